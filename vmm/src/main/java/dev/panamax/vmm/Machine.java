package dev.panamax.vmm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.RamBacking;
import dev.panamax.core.memory.ReservedRegion;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.firmware.BootException;
import dev.panamax.firmware.BzImage;
import dev.panamax.firmware.Initrd;
import dev.panamax.firmware.LinuxBoot;
import dev.panamax.firmware.MpTable;
import dev.panamax.firmware.acpi.AcpiTables;
import dev.panamax.kvm.ExitCounts;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.KvmVcpu;
import dev.panamax.kvm.KvmException;
import dev.panamax.kvm.KvmVm;
import dev.panamax.kvm.VcpuStop;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.vmm.api.ApiServer;
import dev.panamax.vmm.api.VmControl;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SavedMachine;
import dev.panamax.vmm.snapshot.Snapshot;
import dev.panamax.vmm.snapshot.SnapshotException;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import dev.panamax.devices.CmosRtc;
import dev.panamax.devices.AcpiPm;
import dev.panamax.devices.ExitPort;
import dev.panamax.devices.I8042;
import dev.panamax.devices.Serial16550;
import dev.panamax.pci.BusBarMapper;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One x86 PC-like machine on KVM, assembled from the other modules, from first ioctl to last close:
 *
 * <ol>
 * <li>open {@code /dev/kvm}, create the VM with its in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT;</li>
 * <li>reserve the ranges KVM and its in-kernel devices own ({@link X86Layout#reservedRegions()}) in the address
 *     space, then create guest RAM there (one allocation: anonymous memory, or a memfd when a vfio-user device
 *     needs one, {@link MachineConfig#ramBacking()}); the VM's memslot listener mirrors the RAM;</li>
 * <li>put the legacy devices on the port I/O bus: COM1, the i8042 (reset), the CMOS clock, the ACPI PM1 and reset
 *     registers ({@code AcpiPm}: power-off and reset), the exit port;
 *     and the PCI bus (host bridge at 00:00.0, configuration mechanism #1 at 0xCF8/0xCFC, ECAM on the MMIO bus at
 *     {@link X86Layout#ECAM_BASE}); BARs are placed in the PCI windows ({@link PcFirmware#barAllocator});</li>
 * <li>assign the configured devices ({@link DeviceManager}): each goes on the PCI bus with its BARs placed, its
 *     mappable BAR pages in memory slots, its interrupts bound to KVM, and guest RAM mapped for its DMA;</li>
 * <li>load the kernel by the Linux boot protocol (zero page, e820, page tables), with the firmware's tables
 *     built from this machine's description: the ACPI tables ({@link PcFirmware#acpiMachine}: RSDP, XSDT, FADT, MADT, MCFG,
 *     DSDT) and the MP table with the PCI bus's INTx# wiring as MP bus 0 ({@link PcFirmware#mpTable}, for {@code acpi=off});</li>
 * <li>create the vCPUs, give the boot vCPU the protocol's registers, run each on its own thread;</li>
 * <li>wait for a verdict (exit port, reset, power-off, panic, timeout, error), stop every vCPU, reset the assigned devices,
 *     close everything.</li>
 * </ol>
 */
public final class Machine {
    private static final Logger log = LoggerFactory.getLogger(Machine.class);
    /** Lines of the guest console that tell Panamax something. */
    static final String PANIC_LINE = "Kernel panic - not syncing";
    static final String PANIC_END_LINE = "---[ end Kernel panic";
    static final String[] INIT_LINES = {"panamax: init reached", "Run /init as init process"};

    private final MachineConfig config;
    private final AtomicReference<Verdict> verdict = new AtomicReference<>();
    private final CountDownLatch done = new CountDownLatch(1);
    private volatile String panicLine;
    private volatile boolean initSeen;
    /** Sends {@link MachineConfig#readyScript()} to the console; null without one. */
    private volatile ScriptFeeder feeder;
    /** The ids of vCPUs whose thread did not stop in time ({@link #runVcpus}): not closed. */
    private final java.util.Set<Integer> stuck = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /** The snapshot or incoming migration a restore starts from, or null for a boot. */
    private final SavedMachine restoreFrom;
    /** The assigned devices as snapshots see them; set once they are attached. */
    private AssignedDeviceSnapshot assigned = AssignedDeviceSnapshot.none();

    private Machine(MachineConfig config, SavedMachine restoreFrom) {
        this.config = config;
        this.restoreFrom = restoreFrom;
    }

    /**
     * Boots the configured guest and returns how it ended.
     *
     * @throws ConfigException   naming the setting at fault (memory more than the host has, a kernel that is not a
     *                           bzImage, a device that cannot be assigned)
     * @throws MachineException  for other errors the user can act on
     */
    public static Verdict boot(MachineConfig config) {
        return new Machine(config, null).run();
    }

    /**
     * Starts the machine a snapshot holds ({@link Snapshot}), or a live migration brings
     * ({@link dev.panamax.vmm.migration.IncomingMigration}), and returns how it ended: the same machine as
     * {@link #boot}, but guest RAM, the vCPUs, the in-kernel irqchip, PIT and clock, and the device models come from
     * the snapshot instead of a kernel load. {@code config} must have the snapshot's shape
     * ({@link MachineConfig#forSnapshot}); its kernel and initrd are not used.
     *
     * @throws ConfigException ({@link SavedMachine#setting()}: "restore" or "incoming") before any vCPU runs, if the
     *                         snapshot or stream is damaged or does not match {@code config} (vCPUs, RAM, the devices'
     *                         kinds and PCI addresses)
     */
    public static Verdict restore(MachineConfig config, SavedMachine snapshot) {
        SnapshotManifest.Machine m = snapshot.machine();
        if (m.cpus() != config.cpus() || m.memoryBytes() != config.memoryBytes()) {
            throw new ConfigException(snapshot.setting(), "{setting}: the snapshot is of " + m.cpus() + " vCPUs and "
                    + (m.memoryBytes() >> 20) + " MiB, not " + config.cpus() + " vCPUs and " + (config.memoryBytes() >> 20) + " MiB");
        }
        return new Machine(config, snapshot).run();
    }

    /** Logs the verdict for the user and returns the process exit status. */
    public static int report(Verdict v) {
        switch (v.kind()) {
            case GUEST_EXIT, RESET, POWER_OFF, MIGRATED -> log.info("{}", v.detail());
            default -> log.error("{}", v.detail());
        }
        return v.exitStatus();
    }

    /** The first verdict wins; later ones (a reset after a panic, say) are ignored. */
    private void finish(Verdict v) {
        if (verdict.compareAndSet(null, v)) {
            done.countDown();
        }
    }

    private Verdict run() {
        long hostBytes = hostMemoryBytes();
        if (hostBytes > 0 && config.memoryBytes() > hostBytes) {
            throw new ConfigException("memory", ConfigException.SETTING + " " + (config.memoryBytes() >> 20)
                    + " MiB is more than this host has (" + (hostBytes >> 20) + " MiB in /proc/meminfo MemTotal)");
        }
        BzImage kernel = restoreFrom != null ? null : readKernel(config.kernel());
        Initrd initrd = restoreFrom != null || config.initrd() == null ? null : initrdFile(config.initrd());
        try (Kvm kvm = Kvm.open();
             KvmVm vm = kvm.createVm()) {
            AddressSpace space = new AddressSpace();
            space.addListener(vm.memoryListener());
            // The IOAPIC, local APIC, KVM's TSS and identity map: no RAM, BAR or memory slot may go over them.
            for (ReservedRegion r : X86Layout.reservedRegions()) {
                space.add(r);
            }
            try (GuestRam ram = allocate(space, config)) {
                Bus pio = new Bus("pio");
                Bus mmio = new Bus("mmio");
                Map<String, Snapshottable> models = new LinkedHashMap<>();
                Serial16550 com1 = attachDevices(vm, pio, models);
                PciBus pci = new PciBus(vm::irqLine);
                models.put("pci", pci);
                pci.registerPorts(pio);
                pci.registerEcam(mmio);
                PciBarAllocator bars = PcFirmware.barAllocator(config.memoryBytes(), PcFirmware.physicalAddressBits(kvm));
                try (DeviceManager devices = new DeviceManager(space, pci, vm::irqRoutes, vm::ioEventFds, new BusBarMapper(pio, mmio),
                        bars, reason -> finish(Verdict.error(reason)))) {
                    for (DeviceConfig d : config.devices()) {
                        devices.add(d);
                    }
                    assigned = new AssignedDeviceSnapshot(devices.described(), devices.assigned());
                    MachineState restored = restoreFrom == null ? null : restoreMemoryAndModels(ram, models, devices.described());
                    return boot(vm, ram, pio, mmio, com1, pci, bars, kernel, initrd, models, devices.described(), restored);
                }
            }
        }
    }

    /**
     * For a restore, before the vCPUs exist: checks that the devices attached match the snapshot's, then reads its
     * state and guest RAM and restores the device models.
     *
     * @return the state the vCPUs and the VM get once they exist
     * @throws ConfigException ("restore") on a mismatch or a damaged snapshot
     */
    private MachineState restoreMemoryAndModels(GuestRam ram, Map<String, Snapshottable> models,
                                                List<SnapshotManifest.Device> attached) {
        List<SnapshotManifest.Device> saved = restoreFrom.devices();
        if (!SnapshotManifest.Device.sameKinds(saved, attached)) {
            throw new ConfigException(restoreFrom.setting(), "{setting}: the snapshot's devices are " + SnapshotManifest.Device.describe(saved)
                    + ", the command line's " + SnapshotManifest.Device.describe(attached) + ": name the same kinds of device, in the same order");
        }
        try {
            long t0 = System.nanoTime();
            restoreFrom.loadRam(ram.memory().mapping());
            MachineState state = restoreFrom.state();
            log.info("read the machine's state and {} MiB of guest RAM from {} in {} ms", config.memoryBytes() >> 20,
                    restoreFrom.origin(), (System.nanoTime() - t0) / 1_000_000);
            try {
                MachineControl.restoreModels(models, AssignedDeviceSnapshot.modelStates(state.devices(), saved));
                assigned.restore(saved, state.devices()); // stopped until startAll, after the vCPUs' state
            } catch (ConfigException e) { // named "restore": name the option this machine came from
                throw new ConfigException(restoreFrom.setting(), e.messageNaming(ConfigException.SETTING), e);
            }
            return state;
        } catch (SnapshotException | dev.panamax.vmm.migration.MigrationException e) {
            throw new ConfigException(restoreFrom.setting(), "{setting}: " + e.getMessage(), e);
        }
    }

    /**
     * Loads the kernel (or, restoring, takes the vCPUs' and the VM's state from the snapshot), creates the vCPUs and
     * runs them to a verdict.
     */
    private Verdict boot(KvmVm vm, GuestRam ram, Bus pio, Bus mmio, Serial16550 com1, PciBus pci, PciBarAllocator bars,
                         BzImage kernel, Initrd initrd, Map<String, Snapshottable> models,
                         List<SnapshotManifest.Device> described, MachineState restored) {
        X86BootState boot = restored != null ? null : load(ram, kernel, initrd, PcFirmware.mpTable(config.cpus(), pci),
                AcpiTables.build(PcFirmware.acpiMachine(config.cpus(), bars)));
        if (config.consoleInput()) {
            Console.pumpInput(System.in, com1::receive);
        }
        List<KvmVcpu> vcpus = new ArrayList<>();
        try {
            for (int id = 0; id < config.cpus(); id++) {
                vcpus.add(vm.createVcpu(id, config.cpus()));
            }
            if (restored != null) {
                try {
                    MachineControl.restoreCpus(vm, vcpus, restored);
                    assigned.startAll();
                } catch (IllegalArgumentException | KvmException | LinuxException e) {
                    throw new ConfigException(restoreFrom.setting(), "{setting}: " + e.getMessage(), e);
                }
                log.info("restored from {}", restoreFrom.origin());
            } else {
                vcpus.getFirst().setBootState(boot);
            }
            VcpuPause pause = new VcpuPause(vcpus);
            MachineControl control = new MachineControl(config, vm, ram, vcpus, models, described, pause, assigned);
            control.onMigrated(this::finish);
            if (config.readyScript() != null) {
                feeder = new ScriptFeeder(config.readyScript(), com1::offer, control::snapshot, () -> verdict.get() != null,
                        restored != null);
            }
            return runVcpus(vcpus, pio, mmio, pause, control);
        } finally {
            for (KvmVcpu v : vcpus) {
                // A thread still inside KVM_RUN uses the vCPU's fd and kvm_run mapping: closing them under it would
                // free the fd number for reuse (issue 15, defect 14) and unmap the page it reads. The process is
                // ending; the kernel closes it then.
                if (!stuck.contains(v.id())) {
                    v.close();
                }
            }
        }
    }

    /**
     * Guest RAM of {@code config}'s size and backing in {@code space}.
     *
     * @throws ConfigException on "memoryBackend" (hugetlbfs: one line naming the huge pages needed and free) or
     *                         "memory" (the host cannot give that much)
     */
    static GuestRam allocate(AddressSpace space, MachineConfig config) {
        RamBacking backing = config.ramBacking();
        try {
            GuestRam ram = new GuestRam(space, config.memoryBytes(), backing);
            log.debug("guest RAM: {} MiB, {}", config.memoryBytes() >> 20, backing);
            return ram;
        } catch (LinuxException e) {
            if (backing == RamBacking.HUGETLBFS) {
                // One line, at start: the huge pages are reserved when mapped, so a short pool never SIGBUSes later.
                throw new ConfigException("memoryBackend", ConfigException.SETTING + " hugetlbfs: cannot get "
                        + (config.memoryBytes() >> 20) + " MiB of 2 MiB huge pages (" + e.getMessage() + ")", e);
            }
            if (e.errno() == Errno.ENOMEM || e.errno() == Errno.ENOSPC) {
                throw new ConfigException("memory", "cannot get " + (config.memoryBytes() >> 20)
                        + " MiB of guest memory from the host (" + e.getMessage() + "); try a smaller "
                        + ConfigException.SETTING, e);
            }
            throw e;
        }
    }

    private X86BootState load(GuestRam ram, BzImage kernel, Initrd initrd, MpTable mpTable, AcpiTables acpi) {
        try {
            return LinuxBoot.load(ram.low().host(), ram.highBytes(), kernel, initrd, config.cmdline(), mpTable, acpi);
        } catch (BootException e) {
            throw new MachineException(e.getMessage(), e);
        }
    }

    /** Puts the PC's legacy devices on the I/O bus, and those with state into {@code models}; returns COM1 for console input. */
    private Serial16550 attachDevices(KvmVm vm, Bus pio, Map<String, Snapshottable> models) {
        Console console = new Console(this::watchConsole);
        Serial16550 com1 = new Serial16550(vm.irqLine(Serial16550.COM1_IRQ), console::guestOutput);
        I8042 i8042 = new I8042(vm.irqLine(I8042.KBD_IRQ), vm.irqLine(I8042.AUX_IRQ), () -> finish(afterReset("i8042 reset")));
        CmosRtc rtc = new CmosRtc(Clock.systemUTC());
        AcpiPm pm = new AcpiPm(() -> finish(panicLine != null ? Verdict.panic(panicLine) : Verdict.powerOff("ACPI S5")),
                () -> finish(afterReset("ACPI reset register")));
        pio.register(Serial16550.COM1_PORT, Serial16550.PORT_COUNT, "com1", com1);
        pio.register(I8042.BASE_PORT, I8042.PORT_COUNT, "i8042", i8042);
        pio.register(CmosRtc.BASE_PORT, CmosRtc.PORT_COUNT, "rtc", rtc);
        pio.register(ExitPort.PORT, 1, "exit-port", new ExitPort(status -> finish(Verdict.guestExit(status))));
        pio.register(AcpiPm.BASE_PORT, AcpiPm.PORT_COUNT, "acpi-pm", pm);
        // The names their state has in a snapshot (MachineState.devices); the exit port has none.
        models.put("com1", com1);
        models.put("i8042", i8042);
        models.put("rtc", rtc);
        models.put("acpi-pm", pm);
        return com1;
    }

    /** A reset after a panic reports the panic; otherwise it is the guest's way to say "done". */
    private Verdict afterReset(String how) {
        String p = panicLine;
        return p != null ? Verdict.panic(p) : Verdict.reset(how);
    }

    /**
     * A triple fault is a reset only for a guest that chose it as its way to reboot ({@code reboot=t}); any other
     * Linux guest reaches it only by crashing, since its reboot path tries the ACPI reset register and the i8042
     * reset line first, and either ends the VM here (arch/x86/kernel/reboot.c, {@code native_machine_emergency_restart}).
     */
    private Verdict afterTripleFault(String how) {
        // After a panic line, afterReset reports the panic, as for any reset.
        return panicLine != null || rebootsByTripleFault(config.cmdline()) ? afterReset(how) : Verdict.crash(how);
    }

    /**
     * @return whether the last reboot type a Linux command line selects is the triple fault: {@code reboot=} takes
     *         comma-separated words, each known by its first letter ({@code t[riple]}; {@code a}, {@code k}, {@code b},
     *         {@code e}, {@code p} select the others; Documentation/admin-guide/kernel-parameters.txt, "reboot=")
     */
    static boolean rebootsByTripleFault(String cmdline) {
        char type = 0;
        for (String word : cmdline == null ? new String[0] : cmdline.trim().split("\\s+")) {
            if (word.startsWith("reboot=")) {
                for (String mode : word.substring("reboot=".length()).split(",")) {
                    if (!mode.isEmpty() && "takbep".indexOf(mode.charAt(0)) >= 0) {
                        type = mode.charAt(0);
                    }
                }
            }
        }
        return type == 't';
    }

    private void watchConsole(String line) {
        ScriptFeeder f = feeder;
        if (f != null) {
            f.consoleLine(line);
        }
        if (!initSeen) {
            for (String marker : INIT_LINES) {
                if (line.contains(marker)) {
                    initSeen = true;
                    Instant start = ProcessHandle.current().info().startInstant().orElse(Instant.now());
                    log.info("guest init reached {} ms after process start",
                            Duration.between(start, Instant.now()).toMillis());
                }
            }
        }
        if (line.contains(PANIC_LINE) && panicLine == null) {
            panicLine = line.substring(line.indexOf(PANIC_LINE)).strip();
        } else if (line.contains(PANIC_END_LINE) && panicLine != null) {
            finish(Verdict.panic(panicLine));
        }
    }

    private Verdict runVcpus(List<KvmVcpu> vcpus, Bus pio, Bus mmio, VcpuPause pause, VmControl control) {
        List<Thread> threads = new ArrayList<>();
        for (KvmVcpu vcpu : vcpus) {
            Thread t = Thread.ofPlatform().name("vcpu-" + vcpu.id()).unstarted(
                    VcpuThread.body(vcpu.id(), () -> runPausable(vcpu, pio, mmio, pause), this::finish, this::afterReset,
                            this::afterTripleFault));
            threads.add(t);
        }
        ApiServer api = config.apiSocket() == null ? null : ApiServer.start(config.apiSocket(), control);
        threads.forEach(Thread::start);
        if (restoreFrom != null) {
            restoreFrom.running();
        }
        if (feeder != null) {
            feeder.vcpusStarted();
        }
        try {
            boolean ended = config.timeout() == null
                    ? awaitForever()
                    : done.await(config.timeout().toMillis(), TimeUnit.MILLISECONDS);
            if (!ended) {
                finish(Verdict.timeout(config.timeout().toSeconds() + " s"));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            finish(Verdict.error("interrupted"));
        }
        if (api != null) {
            // No request reaches a machine that is ending; the migrate that ended it gets its reply out first.
            api.close(verdict.get().kind() == Verdict.Kind.MIGRATED ? Duration.ofSeconds(2) : Duration.ZERO);
        }
        pause.close(); // before the stop requests: a parked vCPU must not clear its own
        for (KvmVcpu vcpu : vcpus) {
            vcpu.requestStop();
        }
        for (int i = 0; i < threads.size(); i++) {
            Thread t = threads.get(i);
            try {
                t.join(5000);
                if (t.isAlive()) {
                    log.warn("{} did not stop within 5 s; its vCPU is left open", t.getName());
                    stuck.add(vcpus.get(i).id());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (verdict.get().kind() == Verdict.Kind.TIMEOUT) {
            reportTimeout(vcpus, threads);
        }
        if (config.stats()) {
            printStats(vcpus, pio, mmio);
        }
        return verdict.get();
    }

    /**
     * At the timeout, says where each vCPU was, so that a hung guest can be told from a hung VMM: a vCPU thread that
     * stopped gives its RIP, whether KVM had it halted (HLT: waiting for an interrupt) and its exit count; one still in
     * the VMM (a device call that does not return) gives its Java stack instead.
     */
    private static void reportTimeout(List<KvmVcpu> vcpus, List<Thread> threads) {
        for (int i = 0; i < vcpus.size(); i++) {
            KvmVcpu vcpu = vcpus.get(i);
            Thread t = threads.get(i);
            if (t.isAlive()) {
                StringBuilder at = new StringBuilder();
                StackTraceElement[] stack = t.getStackTrace();
                for (int f = 0; f < Math.min(8, stack.length); f++) {
                    at.append(f == 0 ? "" : " <- ").append(stack[f]);
                }
                log.warn("at the timeout vCPU {} was in the VMM, not the guest: {}", vcpu.id(), at);
                continue;
            }
            try {
                boolean halted = vcpu.mpState() == kvm_h.KVM_MP_STATE_HALTED();
                log.warn("at the timeout vCPU {} was at rip 0x{}, {}, after {} exits", vcpu.id(), Long.toHexString(vcpu.rip()),
                        halted ? "halted (waiting for an interrupt)" : "runnable", vcpu.exitCounts().total());
            } catch (RuntimeException e) {
                log.warn("at the timeout vCPU {}: its registers cannot be read: {}", vcpu.id(), e.getMessage());
            }
        }
    }

    /** Runs a vCPU until it stops for another reason than a pause ({@link VcpuPause}). */
    private static VcpuStop runPausable(KvmVcpu vcpu, Bus pio, Bus mmio, VcpuPause pause) {
        VcpuStop stop;
        do {
            stop = vcpu.run(pio, mmio);
        } while (stop.reason() == VcpuStop.Reason.STOPPED && pause.park(vcpu::clearStop));
        return stop;
    }

    /** {@link MachineConfig#stats()}: the exit counts of every vCPU, one table (read after the vCPU threads were joined). */
    private static void printStats(List<KvmVcpu> vcpus, Bus pio, Bus mmio) {
        for (String line : ExitCounts.table(vcpus.stream().map(KvmVcpu::exitCounts).toList(), pio, mmio)) {
            log.info("{}", line);
        }
        log.info("{}", StartTime.firstKvmRunLine(ProcessHandle.current().info().startInstant(),
                vcpus.stream().flatMap(v -> v.firstRun().stream()).min(Instant::compareTo)));
    }

    private boolean awaitForever() throws InterruptedException {
        done.await();
        return true;
    }

    /** @return the host's MemTotal in bytes, or 0 if /proc/meminfo cannot say */
    static long hostMemoryBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            log.debug("cannot read MemTotal from /proc/meminfo", e);
        }
        return 0;
    }

    private static BzImage readKernel(Path path) {
        try {
            return BzImage.read(path);
        } catch (BootException e) {
            throw new ConfigException("kernel", e.getMessage(), e);
        }
    }

    /** The initrd file, checked now (before KVM is opened) and read straight into guest RAM at load. */
    private static Initrd initrdFile(Path path) {
        try {
            return Initrd.file(path);
        } catch (BootException e) {
            throw new ConfigException("initrd", e.getMessage(), e);
        }
    }
}
