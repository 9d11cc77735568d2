package dev.panamax.vmm;

import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateException;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.KvmException;
import dev.panamax.kvm.KvmVcpu;
import dev.panamax.kvm.KvmVm;
import dev.panamax.kvm.VcpuState;
import dev.panamax.kvm.VmState;
import dev.panamax.vmm.api.VmControl;
import dev.panamax.vmm.migration.MigrationException;
import dev.panamax.vmm.migration.MigrationSource;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.Snapshot;
import dev.panamax.vmm.snapshot.SnapshotException;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * A running machine as the control socket sees it ({@link VmControl}): pause and resume through {@link VcpuPause},
 * and snapshots: with the vCPUs paused, each vCPU's and the VM's KVM state, each device model's registers
 * ({@link Snapshottable}) and guest RAM go into a {@link Snapshot} directory. {@link #capture} and {@link #restore}
 * are the two halves a restore ({@code Machine.restore}) shares.
 */
final class MachineControl implements VmControl {
    private static final Logger log = LoggerFactory.getLogger(MachineControl.class);

    private final MachineConfig config;
    private final KvmVm vm;
    private final GuestRam ram;
    private final List<KvmVcpu> vcpus;
    private final Map<String, Snapshottable> models;
    private final List<SnapshotManifest.Device> devices;
    private final VcpuPause pause;
    /** The assigned devices, saved by migration ({@link AssignedDeviceSnapshot}). */
    private final AssignedDeviceSnapshot assigned;
    private final long startNanos = System.nanoTime();
    /** The kvmclock when the VM was paused (nanoseconds); meaningful while paused. Guarded by this. */
    private long pausedClock;

    MachineControl(MachineConfig config, KvmVm vm, GuestRam ram, List<KvmVcpu> vcpus, Map<String, Snapshottable> models,
                   List<SnapshotManifest.Device> devices, VcpuPause pause) {
        this(config, vm, ram, vcpus, models, devices, pause, AssignedDeviceSnapshot.none());
    }

    MachineControl(MachineConfig config, KvmVm vm, GuestRam ram, List<KvmVcpu> vcpus, Map<String, Snapshottable> models,
                   List<SnapshotManifest.Device> devices, VcpuPause pause, AssignedDeviceSnapshot assigned) {
        this.assigned = assigned;
        this.config = config;
        this.vm = vm;
        this.ram = ram;
        this.vcpus = List.copyOf(vcpus);
        this.models = models;
        this.devices = List.copyOf(devices);
        this.pause = pause;
    }

    @Override
    public Status status() {
        return new Status(pause.paused() ? Status.PAUSED : Status.RUNNING, config.cpus(), config.memoryBytes(),
                (System.nanoTime() - startNanos) / 1_000_000);
    }

    /**
     * Pauses the vCPUs and reads the kvmclock then: a resume puts it back, and a snapshot saves it, so guest time
     * stands still while the VM does (as QEMU's {@code kvmclock_vm_state_change}).
     */
    @Override
    public synchronized void pause() {
        boolean was = pause.paused();
        pause.pause();
        if (!was) {
            pausedClock = vm.clock();
            log.info("VM paused");
        }
    }

    @Override
    public synchronized void resume() {
        String deviceFailure = assigned.resumeAll(); // devices a failed migration stopped run again first
        if (deviceFailure != null) {
            log.error("{}", deviceFailure);
        }
        if (pause.paused()) {
            vm.setClock(pausedClock);
            pause.resume();
            log.info("VM resumed");
        }
    }

    @Override
    public synchronized SnapshotResult snapshot(Path dir) {
        assigned.checkSavable("snapshot"); // a device that cannot be saved refuses before anything stops
        boolean wasPaused = pause.paused();
        long t0 = System.nanoTime();
        pause();
        try {
            MachineState state = captureWithDevices();
            Snapshot.Written w = Snapshot.write(dir, new SnapshotManifest.Machine(config.cpus(), config.memoryBytes(),
                    config.cmdline(), ram.backing().name()), devices, ram.memory().mapping(), state);
            long ms = (System.nanoTime() - t0) / 1_000_000;
            log.info("snapshot of {} MiB guest RAM written to {} ({} MiB on disk), VM paused {} ms", w.ramBytes() >> 20,
                    dir, w.diskBytes() >> 20, ms);
            return new SnapshotResult(dir, w.ramBytes(), w.diskBytes(), ms);
        } catch (SnapshotException | KvmException | LinuxException | StateException e) {
            throw new ControlException("snapshot failed: " + e.getMessage() + "; the VM runs on", e);
        } finally {
            String deviceFailure = assigned.resumeAll(); // the devices run again whatever happened
            if (!wasPaused) {
                resume();
            }
            if (deviceFailure != null) {
                log.error("after the snapshot: {}", deviceFailure);
            }
        }
    }

    /** Called with the verdict that ends this machine once it runs at a migration's destination. */
    private volatile Consumer<Verdict> onMigrated = v -> { };

    void onMigrated(Consumer<Verdict> finish) {
        this.onMigrated = finish;
    }

    /**
     * Live migration ({@link MigrationSource}), assigned devices' state included (refused
     * for a device that cannot migrate, as {@link #snapshot}). On success the machine ends here with
     * {@link Verdict#migrated} (status 0).
     */
    @Override
    public synchronized MigrationResult migrate(Path socket) {
        assigned.checkSavable("migrate"); // as for a snapshot: a device that cannot migrate refuses before anything starts
        MachineMigration m = new MachineMigration(this, vm, ram, new SnapshotManifest.Machine(config.cpus(),
                config.memoryBytes(), config.cmdline(), ram.backing().name()), devices, assigned, this::captureWithDevices);
        try {
            MigrationSource.Result r = MigrationSource.migrate(m, socket, MIGRATION_TIMEOUT);
            log.info("migrated to {}; downtime {} ms ({} rounds, {} MiB sent, {} pages with the VM paused, {} ms in all)",
                    socket, r.downtimeMillis(), r.rounds(), r.pagesSent() * 4096 >> 20, r.finalPages(), r.totalMillis());
            onMigrated.accept(Verdict.migrated(socket + "; downtime " + r.downtimeMillis() + " ms"));
            return new MigrationResult(socket, r.downtimeMillis(), r.rounds(), r.pagesSent() * 4096, r.totalMillis());
        } catch (MigrationException | KvmException | LinuxException | StateException e) {
            throw new ControlException("migrate failed: " + e.getMessage() + "; the VM runs on", e);
        }
    }

    /**
     * With the vCPUs paused: {@link #capture} and each assigned device's state, the device left stopped (STOP_COPY)
     * until {@link AssignedDeviceSnapshot#resumeAll} (after a snapshot, in {@link #resume()} after a failed migration)
     * or the machine's end (a migration done).
     */
    private MachineState captureWithDevices() {
        MachineState state = capture(vm, vcpus, models, pausedClock);
        if (devices.isEmpty()) {
            return state;
        }
        Map<String, byte[]> all = new LinkedHashMap<>(state.devices());
        all.putAll(assigned.stopAndSave());
        return new MachineState(state.vm(), state.vcpus(), all);
    }

    /** How long the destination may go silent during a migration. */
    static final Duration MIGRATION_TIMEOUT = Duration.ofSeconds(60);

    /**
     * @param clock the kvmclock when the vCPUs were paused (nanoseconds), saved instead of the clock now
     * @return everything but RAM, read with every vCPU paused
     */
    static MachineState capture(KvmVm vm, List<KvmVcpu> vcpus, Map<String, Snapshottable> models, long clock) {
        List<VcpuState> cpus = new ArrayList<>();
        for (KvmVcpu v : vcpus) {
            cpus.add(v.saveState());
        }
        Map<String, byte[]> states = new LinkedHashMap<>();
        models.forEach((name, model) -> states.put(name, model.saveState()));
        VmState now = vm.saveState();
        return new MachineState(new VmState(now.picMaster(), now.picSlave(), now.ioapic(), now.pit2(), clock), cpus, states);
    }

    /**
     * Puts every device model back, before any vCPU exists: each model of {@code models} must have a state, and the
     * snapshot no other.
     *
     * @throws ConfigException ("restore") naming the model whose state is missing, unknown or malformed
     */
    static void restoreModels(Map<String, Snapshottable> models, Map<String, byte[]> states) {
        for (String name : states.keySet()) {
            if (!models.containsKey(name)) {
                throw new ConfigException("restore", "{setting}: the snapshot holds state for device " + name
                        + ", which this machine has not");
            }
        }
        for (var e : models.entrySet()) {
            byte[] s = states.get(e.getKey());
            if (s == null) {
                throw new ConfigException("restore", "{setting}: the snapshot holds no state for device " + e.getKey());
            }
            try {
                e.getValue().restoreState(s);
            } catch (StateException x) {
                throw new ConfigException("restore", "{setting}: device " + e.getKey() + ": " + x.getMessage(), x);
            }
        }
    }

    /** Puts the vCPUs and the VM back (the vCPUs created, not yet run). */
    static void restoreCpus(KvmVm vm, List<KvmVcpu> vcpus, MachineState state) {
        for (KvmVcpu v : vcpus) {
            v.restoreState(state.vcpus().get(v.id()));
        }
        vm.restoreState(state.vm());
    }
}
