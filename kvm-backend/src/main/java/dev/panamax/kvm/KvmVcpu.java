package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_dtable;
import dev.panamax.kvm.bindings.kvm_fpu;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_mp_state;
import dev.panamax.kvm.bindings.kvm_msr_entry;
import dev.panamax.kvm.bindings.kvm_msrs;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_run;
import dev.panamax.kvm.bindings.kvm_segment;
import dev.panamax.kvm.bindings.kvm_signal_mask;
import dev.panamax.kvm.bindings.kvm_sregs;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

/**
 * One KVM vCPU (api.rst section 4, "vcpu ioctls") and its run loop.
 *
 * <p>Created configured for an x86 PC (as Firecracker configures its vCPUs): CPUID from
 * {@code KVM_GET_SUPPORTED_CPUID} with this vCPU's APIC id and the VM's topology ({@link Cpuid}), the MSRs
 * a 64-bit Linux boot expects ({@link #BOOT_MSRS}), a reset FPU (FCW 0x37f, MXCSR 0x1f80), and the local
 * APIC's LINT0 as ExtINT (the 8259 PIC's output) and LINT1 as NMI, as a PC BIOS leaves them (Intel MP
 * spec 1.4, 3.6.2, virtual wire mode).
 *
 * <p>{@link #run} runs the vCPU on the calling platform thread until it stops. Port I/O and MMIO exits
 * go to the two buses without allocating, and every exit is counted ({@link #exitCounts()}, plain longs). {@link #requestStop()} from any other thread makes it return:
 * it sets {@code kvm_run.immediate_exit} and sends {@link #KICK_SIGNAL} to the vCPU thread, which is
 * blocked in the thread but unblocked during {@code KVM_RUN} ({@code KVM_SET_SIGNAL_MASK}), so it ends a
 * {@code KVM_RUN} sleeping in the kernel (a halted vCPU) with EINTR without ever being delivered: no
 * signal handler is needed.
 */
public final class KvmVcpu implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvmVcpu.class);
    /** Per-exit tracing, with the bus traces of {@code --trace} ({@code dev.panamax.trace.pio/mmio}). */
    private static final Logger trace = LoggerFactory.getLogger("dev.panamax.trace.kvm");

    /**
     * The signal that kicks a vCPU thread out of {@code KVM_RUN}: SIGRTMIN+6. glibc reserves signals 32
     * and 33 for itself (thread cancellation, setxid), so its SIGRTMIN is 34 at run time. HotSpot on Linux
     * uses SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGPIPE, SIGXFSZ, SIGQUIT (thread dumps), SIGHUP/SIGINT/SIGTERM
     * (shutdown hooks) and SIGUSR2 (thread suspend/resume; the environment variable {@code _JAVA_SR_SIGNUM}
     * can move it); no real-time signal. Firecracker uses SIGRTMIN+0 for the same purpose; the
     * offset leaves the first real-time signals to libraries that take SIGRTMIN itself. It must be at most 64
     * to fit the kernel's 8-byte sigset of {@code KVM_SET_SIGNAL_MASK}.
     */
    public static final int KICK_SIGNAL = 34 + 6;

    /** A boot MSR: index, value, and its name in the Intel SDM (Vol. 4, chapter 2). */
    public record Msr(int index, long value, String name) {
    }

    /** IA32_MISC_ENABLE bit 0: fast-strings enable (REP MOVS/STOS in larger units). */
    static final long MISC_ENABLE_FAST_STRING = 1;
    /** IA32_MTRR_DEF_TYPE: MTRRs enabled (bit 11), default memory type write-back (6). */
    static final long MTRR_DEF_TYPE_ENABLED_WB = (1 << 11) | 6;

    /**
     * The MSRs set before a 64-bit Linux boot, the list Firecracker sets ({@code create_boot_msr_entries}):
     * SYSENTER and SYSCALL targets cleared, TSC = 0, fast strings on, MTRRs on with write-back default.
     */
    public static final List<Msr> BOOT_MSRS = List.of(
            new Msr(0x174, 0, "IA32_SYSENTER_CS"),
            new Msr(0x175, 0, "IA32_SYSENTER_ESP"),
            new Msr(0x176, 0, "IA32_SYSENTER_EIP"),
            new Msr(0xc0000081, 0, "IA32_STAR"),
            new Msr(0xc0000083, 0, "IA32_CSTAR"),
            new Msr(0xc0000102, 0, "IA32_KERNEL_GS_BASE"),
            new Msr(0xc0000084, 0, "IA32_FMASK (SYSCALL_MASK)"),
            new Msr(0xc0000082, 0, "IA32_LSTAR"),
            new Msr(0x10, 0, "IA32_TIME_STAMP_COUNTER"),
            new Msr(0x1a0, MISC_ENABLE_FAST_STRING, "IA32_MISC_ENABLE"),
            new Msr(0x2ff, MTRR_DEF_TYPE_ENABLED_WB, "IA32_MTRR_DEF_TYPE"));

    /** Local APIC register offsets (Intel SDM Vol. 3A, table 11-1) and LVT delivery modes (bits 10:8). */
    static final int APIC_LVT_LINT0 = 0x350;
    static final int APIC_LVT_LINT1 = 0x360;
    static final int APIC_DELIVERY_NMI = 0b100;
    static final int APIC_DELIVERY_EXTINT = 0b111;

    private final KvmVm vm;
    private final int id;
    private final int fd;
    /** The shared kvm_run mapping ({@code KVM_GET_VCPU_MMAP_SIZE} bytes); PIO data lies inside it too. */
    private final MemorySegment run;
    /** Buffers of the run thread, allocated once. */
    private final Arena arena = Arena.ofShared();
    private final MemorySegment kickSet;
    private final MemorySegment zeroTimeout;
    /** errno of KVM_RUN, this vCPU's own (the run loop has one thread). */
    private final MemorySegment runErrno;

    /** What this vCPU's exits were (--stats), counted by the run thread. */
    private final ExitCounts exitCounts = new ExitCounts();

    private final Object kickLock = new Object();
    /** The pthread_t running {@link #run}, or 0; guarded by kickLock. */
    private long runThread;
    private volatile boolean stop;
    private boolean closed;

    KvmVcpu(KvmVm vm, int id, int vcpuCount) {
        this.vm = vm;
        this.id = id;
        this.fd = Libc.ioctl(vm.fd(), kvm_h.KVM_CREATE_VCPU(), id, "KVM_CREATE_VCPU " + id);
        MemorySegment mapping = null;
        try {
            mapping = Libc.mmap(vm.kvm().vcpuMmapSize(), Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0,
                    "kvm_run of vCPU " + id);
            this.kickSet = Libc.sigset(arena, KICK_SIGNAL);
            this.zeroTimeout = arena.allocate(16, 8); // struct timespec {0, 0}
            this.runErrno = Libc.newErrnoCapture(arena);
            setCpuid(Cpuid.forVcpu(vm.kvm().supportedCpuid(), id, vcpuCount));
            setMsrs(BOOT_MSRS);
            setFpuReset();
            setLapicVirtualWire();
        } catch (RuntimeException e) {
            if (mapping != null) {
                Libc.munmap(mapping);
            }
            Libc.close(fd);
            arena.close();
            throw e;
        }
        this.run = mapping;
        log.debug("vCPU {} of {}: fd {}, kvm_run {} bytes", id, vcpuCount, fd, run.byteSize());
    }

    /** @return the vCPU id (also its APIC id) */
    public int id() {
        return id;
    }

    /** @return the vCPU file descriptor */
    public int fd() {
        return fd;
    }

    /**
     * @return the exits this vCPU took so far, by reason and by device; read them after the thread that ran
     *         {@link #run} has ended (they are plain fields written by that thread)
     */
    public ExitCounts exitCounts() {
        return exitCounts;
    }

    // ---- configuration ----

    /** {@code KVM_SET_CPUID2} with {@code entries}. */
    public void setCpuid(List<CpuidEntry> entries) {
        try (Arena a = Arena.ofConfined()) {
            Libc.ioctl(fd, kvm_h.KVM_SET_CPUID2(), Kvm.encodeCpuid(a, entries), "KVM_SET_CPUID2 vCPU " + id);
        }
    }

    /**
     * {@code KVM_SET_MSRS}.
     *
     * @throws KvmException naming the first MSR KVM did not accept
     */
    public void setMsrs(List<Msr> msrs) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(kvm_msrs.sizeof() + msrs.size() * kvm_msr_entry.sizeof(), 8);
            kvm_msrs.nmsrs(s, msrs.size());
            for (int i = 0; i < msrs.size(); i++) {
                MemorySegment e = kvm_msrs.entries(s, i);
                kvm_msr_entry.index(e, msrs.get(i).index());
                kvm_msr_entry.data(e, msrs.get(i).value());
            }
            // Returns how many entries it set, stopping at the first it refuses.
            int set = Libc.ioctl(fd, kvm_h.KVM_SET_MSRS(), s, "KVM_SET_MSRS vCPU " + id);
            if (set != msrs.size()) {
                Msr bad = msrs.get(set);
                throw new KvmException(String.format("KVM_SET_MSRS vCPU %d: KVM refused %s (0x%x) = 0x%x", id,
                        bad.name(), bad.index(), bad.value()));
            }
        }
    }

    /** {@code KVM_SET_FPU} with the x87/SSE state after FNINIT: FCW 0x37f, MXCSR 0x1f80, all else 0. */
    public void setFpuReset() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment fpu = kvm_fpu.allocate(a);
            kvm_fpu.fcw(fpu, (short) 0x37f);
            kvm_fpu.mxcsr(fpu, 0x1f80);
            Libc.ioctl(fd, kvm_h.KVM_SET_FPU(), fpu, "KVM_SET_FPU vCPU " + id);
        }
    }

    /** Reads the LAPIC ({@code KVM_GET_LAPIC}), sets LINT0 to ExtINT and LINT1 to NMI, writes it back. */
    public void setLapicVirtualWire() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment lapic = kvm_lapic_state.allocate(a);
            Libc.ioctl(fd, kvm_h.KVM_GET_LAPIC(), lapic, "KVM_GET_LAPIC vCPU " + id);
            setVirtualWire(lapic);
            Libc.ioctl(fd, kvm_h.KVM_SET_LAPIC(), lapic, "KVM_SET_LAPIC vCPU " + id);
        }
    }

    /** Patches LVT LINT0 to ExtINT and LINT1 to NMI in a {@code struct kvm_lapic_state}. */
    static void setVirtualWire(MemorySegment lapic) {
        long regs = kvm_lapic_state.regs$offset();
        lapic.set(JAVA_INT, regs + APIC_LVT_LINT0, withDeliveryMode(lapic.get(JAVA_INT, regs + APIC_LVT_LINT0), APIC_DELIVERY_EXTINT));
        lapic.set(JAVA_INT, regs + APIC_LVT_LINT1, withDeliveryMode(lapic.get(JAVA_INT, regs + APIC_LVT_LINT1), APIC_DELIVERY_NMI));
    }

    /** @return an LVT register value with delivery mode (bits 10:8) replaced by {@code mode} */
    static int withDeliveryMode(int lvt, int mode) {
        return (lvt & ~0x700) | (mode << 8);
    }

    /**
     * Loads the boot protocol's register state: KVM_GET_SREGS, then CS from {@code code}, DS/ES/FS/GS/SS
     * from {@code data}, GDT, IDT, CR0, CR3, CR4 and EFER, KVM_SET_SREGS; then KVM_SET_REGS with RIP, RSP,
     * RSI and RFLAGS and every other general register 0. TR and LDT keep KVM's reset values.
     *
     * @throws IllegalArgumentException if a segment field does not fit {@code struct kvm_segment}
     */
    public void setBootState(X86BootState boot) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sregs = kvm_sregs.allocate(a);
            Libc.ioctl(fd, kvm_h.KVM_GET_SREGS(), sregs, "KVM_GET_SREGS vCPU " + id);
            toKvmSegment(boot.code(), kvm_sregs.cs(sregs));
            for (MemorySegment s : List.of(kvm_sregs.ds(sregs), kvm_sregs.es(sregs), kvm_sregs.fs(sregs),
                    kvm_sregs.gs(sregs), kvm_sregs.ss(sregs))) {
                toKvmSegment(boot.data(), s);
            }
            setDtable(kvm_sregs.gdt(sregs), boot.gdtBase(), boot.gdtLimit(), "GDT");
            setDtable(kvm_sregs.idt(sregs), boot.idtBase(), boot.idtLimit(), "IDT");
            kvm_sregs.cr0(sregs, boot.cr0());
            kvm_sregs.cr3(sregs, boot.cr3());
            kvm_sregs.cr4(sregs, boot.cr4());
            kvm_sregs.efer(sregs, boot.efer());
            Libc.ioctl(fd, kvm_h.KVM_SET_SREGS(), sregs, "KVM_SET_SREGS vCPU " + id);

            MemorySegment regs = kvm_regs.allocate(a);
            kvm_regs.rip(regs, boot.rip());
            kvm_regs.rsp(regs, boot.rsp());
            kvm_regs.rsi(regs, boot.rsi());
            kvm_regs.rflags(regs, boot.rflags());
            Libc.ioctl(fd, kvm_h.KVM_SET_REGS(), regs, "KVM_SET_REGS vCPU " + id);
        }
    }

    private static void setDtable(MemorySegment dtable, long base, int limit, String what) {
        if (limit < 0 || limit > 0xffff) {
            throw new IllegalArgumentException(what + " limit 0x" + Integer.toHexString(limit) + " does not fit 16 bits");
        }
        kvm_dtable.base(dtable, base);
        kvm_dtable.limit(dtable, (short) limit);
    }

    /**
     * Writes a {@link Segment} into a {@code struct kvm_segment}: the fields one to one, {@code avl} 0, and
     * {@code unusable} set for a segment that is not present (VMX's "segment unusable" bit).
     *
     * @throws IllegalArgumentException if selector, limit, type or DPL is out of range
     */
    static void toKvmSegment(Segment s, MemorySegment k) {
        if (s.selector() < 0 || s.selector() > 0xffff || s.limit() < 0 || s.limit() > 0xffffffffL
                || s.type() < 0 || s.type() > 0xf || s.dpl() < 0 || s.dpl() > 3) {
            throw new IllegalArgumentException("segment " + s + " does not fit struct kvm_segment "
                    + "(selector 16 bits, limit 32 bits, type 4 bits, DPL 0..3)");
        }
        kvm_segment.base(k, s.base());
        kvm_segment.limit(k, (int) s.limit());
        kvm_segment.selector(k, (short) s.selector());
        kvm_segment.type(k, (byte) s.type());
        kvm_segment.present(k, bit(s.present()));
        kvm_segment.dpl(k, (byte) s.dpl());
        kvm_segment.db(k, bit(s.db()));
        kvm_segment.s(k, bit(s.s()));
        kvm_segment.l(k, bit(s.l()));
        kvm_segment.g(k, bit(s.g()));
        kvm_segment.avl(k, (byte) 0);
        kvm_segment.unusable(k, bit(!s.present()));
        kvm_segment.padding(k, (byte) 0);
    }

    private static byte bit(boolean b) {
        return (byte) (b ? 1 : 0);
    }

    /** @return the vCPU's RIP ({@code KVM_GET_REGS}), for diagnostics */
    public long rip() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment regs = kvm_regs.allocate(a);
            Libc.ioctl(fd, kvm_h.KVM_GET_REGS(), regs, "KVM_GET_REGS vCPU " + id);
            return kvm_regs.rip(regs);
        }
    }

    /** @return {@code KVM_GET_MP_STATE}: a {@code KVM_MP_STATE_*} value of {@link kvm_h} */
    public int mpState() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = kvm_mp_state.allocate(a);
            Libc.ioctl(fd, kvm_h.KVM_GET_MP_STATE(), s, "KVM_GET_MP_STATE vCPU " + id);
            return kvm_mp_state.mp_state(s);
        }
    }

    /** {@code KVM_SET_MP_STATE} with a {@code KVM_MP_STATE_*} value. */
    public void setMpState(int state) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = kvm_mp_state.allocate(a);
            kvm_mp_state.mp_state(s, state);
            Libc.ioctl(fd, kvm_h.KVM_SET_MP_STATE(), s, "KVM_SET_MP_STATE vCPU " + id);
        }
    }

    // ---- running ----

    /**
     * Runs the vCPU on the calling thread until it stops: {@code KVM_RUN} in a loop, port I/O exits to
     * {@code pio} (port numbers), MMIO exits to {@code mmio} (guest-physical addresses).
     *
     * @return why it stopped: {@link #requestStop()}, HLT, triple fault, or a system event (power off, reset, crash)
     * @throws KvmException on {@code KVM_EXIT_FAIL_ENTRY}, {@code KVM_EXIT_INTERNAL_ERROR} or an exit Panamax
     *                      does not handle; the message gives the hardware reason or suberror and RIP
     * @throws IllegalStateException if called on a virtual thread or while another thread runs this vCPU
     */
    public VcpuExit run(Bus pio, Bus mmio) {
        enterRunThread();
        try {
            return loop(pio, mmio);
        } finally {
            leaveRunThread();
        }
    }

    private VcpuExit loop(Bus pio, Bus mmio) {
        final long kvmRun = kvm_h.KVM_RUN();
        final boolean tracing = trace.isTraceEnabled();
        final ExitCounts counts = exitCounts;
        while (true) {
            if (stop) {
                return new VcpuExit(VcpuExit.Reason.STOPPED, "vCPU " + id + " stopped");
            }
            int r = Libc.ioctlRaw(runErrno, fd, kvmRun, 0);
            if (r < 0) {
                if (-r == Errno.EINTR || -r == Errno.EAGAIN) {
                    counts.interrupted++;
                    // Kicked (immediate_exit or KICK_SIGNAL) or another signal: take the kick, look at stop, go on.
                    drainKicks();
                    kvm_run.immediate_exit(run, (byte) 0);
                    continue;
                }
                throw new LinuxException("KVM_RUN vCPU " + id, -r);
            }
            int reason = kvm_run.exit_reason(run);
            counts.exit(reason);
            if (reason == kvm_h.KVM_EXIT_IO()) {
                io(pio, tracing);
            } else if (reason == kvm_h.KVM_EXIT_MMIO()) {
                mmio(mmio, tracing);
            } else if (reason == kvm_h.KVM_EXIT_HLT()) {
                return new VcpuExit(VcpuExit.Reason.HALTED, "vCPU " + id + " halted (KVM_EXIT_HLT)");
            } else if (reason == kvm_h.KVM_EXIT_SHUTDOWN()) {
                return new VcpuExit(VcpuExit.Reason.SHUTDOWN,
                        "vCPU " + id + " shut down (KVM_EXIT_SHUTDOWN: triple fault) at rip 0x" + Long.toHexString(rip()));
            } else if (reason == kvm_h.KVM_EXIT_SYSTEM_EVENT()) {
                return systemEvent();
            } else if (reason == kvm_h.KVM_EXIT_FAIL_ENTRY()) {
                throw new KvmException(String.format(
                        "vCPU %d: VM entry failed (KVM_EXIT_FAIL_ENTRY), hardware_entry_failure_reason 0x%x on host CPU %d"
                                + " (Intel: 0x80000021 is invalid guest state, SDM Vol. 3C 27.8)",
                        id, kvm_run.fail_entry_hardware_entry_failure_reason(run), kvm_run.fail_entry_cpu(run)));
            } else if (reason == kvm_h.KVM_EXIT_INTERNAL_ERROR()) {
                throw new KvmException(internalError());
            } else if (reason == kvm_h.KVM_EXIT_IRQ_WINDOW_OPEN() || reason == kvm_h.KVM_EXIT_INTR()) {
                continue; // not requested by Panamax, harmless: run again
            } else {
                throw new KvmException(String.format("vCPU %d: unexpected KVM exit reason %d%s at rip 0x%x", id, reason,
                        reason == kvm_h.KVM_EXIT_UNKNOWN()
                                ? " (KVM_EXIT_UNKNOWN, hardware_exit_reason 0x" + Long.toHexString(kvm_run.hw_hardware_exit_reason(run)) + ")"
                                : "", rip()));
            }
        }
    }

    /** KVM_EXIT_IO: {@code count} accesses of {@code size} bytes at {@code port}; data at {@code data_offset} in kvm_run. */
    private void io(Bus pio, boolean tracing) {
        int size = kvm_run.io_size(run) & 0xff;
        int port = kvm_run.io_port(run) & 0xffff;
        int count = kvm_run.io_count(run);
        long data = kvm_run.io_data_offset(run);
        boolean out = kvm_run.io_direction(run) == kvm_h.KVM_EXIT_IO_OUT();
        if (tracing) {
            trace.trace("vcpu {} exit io {} port 0x{} size {} count {}", id, out ? "out" : "in", Integer.toHexString(port), size, count);
        }
        for (int i = 0; i < count; i++, data += size) { // count > 1 for string I/O (INS/OUTS with REP)
            if (out) {
                pio.write(port, size, load(run, data, size), exitCounts.pio);
            } else {
                store(run, data, size, pio.read(port, size, exitCounts.pio));
            }
        }
    }

    /** KVM_EXIT_MMIO: one access of {@code len} bytes at {@code phys_addr}; data in {@code mmio.data[8]}. */
    private void mmio(Bus mmio, boolean tracing) {
        long address = kvm_run.mmio_phys_addr(run);
        int len = kvm_run.mmio_len(run);
        boolean write = kvm_run.mmio_is_write(run) != 0;
        long data = kvm_run.mmio_data$offset();
        if (tracing) {
            trace.trace("vcpu {} exit mmio {} 0x{} len {}", id, write ? "write" : "read", Long.toHexString(address), len);
        }
        if (len < 1 || len > 8) {
            throw new KvmException("vCPU " + id + ": MMIO access of " + len + " bytes at 0x" + Long.toHexString(address));
        }
        if (write) {
            mmio.write(address, len, load(run, data, len), exitCounts.mmio);
        } else {
            store(run, data, len, mmio.read(address, len, exitCounts.mmio));
        }
    }

    /** @return {@code size} bytes at {@code offset}, little-endian, zero-extended */
    static long load(MemorySegment s, long offset, int size) {
        return switch (size) {
            case 1 -> s.get(JAVA_BYTE, offset) & 0xffL;
            case 2 -> s.get(JAVA_SHORT_UNALIGNED, offset) & 0xffffL;
            case 4 -> s.get(JAVA_INT_UNALIGNED, offset) & 0xffffffffL;
            case 8 -> s.get(JAVA_LONG_UNALIGNED, offset);
            default -> {
                long v = 0;
                for (int i = 0; i < size; i++) {
                    v |= (s.get(JAVA_BYTE, offset + i) & 0xffL) << (8 * i);
                }
                yield v;
            }
        };
    }

    /** Stores the low {@code size} bytes of {@code value} at {@code offset}, little-endian. */
    static void store(MemorySegment s, long offset, int size, long value) {
        switch (size) {
            case 1 -> s.set(JAVA_BYTE, offset, (byte) value);
            case 2 -> s.set(JAVA_SHORT_UNALIGNED, offset, (short) value);
            case 4 -> s.set(JAVA_INT_UNALIGNED, offset, (int) value);
            case 8 -> s.set(JAVA_LONG_UNALIGNED, offset, value);
            default -> {
                for (int i = 0; i < size; i++) {
                    s.set(JAVA_BYTE, offset + i, (byte) (value >>> (8 * i)));
                }
            }
        }
    }

    private VcpuExit systemEvent() {
        int type = kvm_run.system_event_type(run);
        if (type == kvm_h.KVM_SYSTEM_EVENT_SHUTDOWN()) {
            return new VcpuExit(VcpuExit.Reason.POWER_OFF, "vCPU " + id + ": guest powered off (KVM_SYSTEM_EVENT_SHUTDOWN)");
        } else if (type == kvm_h.KVM_SYSTEM_EVENT_RESET()) {
            return new VcpuExit(VcpuExit.Reason.RESET, "vCPU " + id + ": guest asked for a reset (KVM_SYSTEM_EVENT_RESET)");
        } else if (type == kvm_h.KVM_SYSTEM_EVENT_CRASH()) {
            return new VcpuExit(VcpuExit.Reason.CRASH, "vCPU " + id + ": guest crashed (KVM_SYSTEM_EVENT_CRASH)");
        }
        return new VcpuExit(VcpuExit.Reason.SYSTEM_EVENT, "vCPU " + id + ": KVM_EXIT_SYSTEM_EVENT type " + type);
    }

    private String internalError() {
        int suberror = kvm_run.internal_suberror(run);
        int ndata = Math.min(kvm_run.internal_ndata(run), 16);
        String name = suberror == kvm_h.KVM_INTERNAL_ERROR_EMULATION() ? "KVM_INTERNAL_ERROR_EMULATION: KVM could not emulate an instruction"
                : suberror == kvm_h.KVM_INTERNAL_ERROR_SIMUL_EX() ? "KVM_INTERNAL_ERROR_SIMUL_EX: exception while delivering an exception"
                : suberror == kvm_h.KVM_INTERNAL_ERROR_DELIVERY_EV() ? "KVM_INTERNAL_ERROR_DELIVERY_EV: VM exit during event delivery"
                : suberror == kvm_h.KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON() ? "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON"
                : "suberror " + suberror;
        StringBuilder b = new StringBuilder("vCPU " + id + ": KVM internal error (" + name + ")");
        for (int i = 0; i < ndata; i++) {
            b.append(i == 0 ? ", data" : "").append(" 0x").append(Long.toHexString(kvm_run.internal_data(run, i)));
        }
        try {
            b.append(" at rip 0x").append(Long.toHexString(rip()));
        } catch (RuntimeException e) {
            b.append(" (rip unreadable: ").append(e.getMessage()).append(')');
        }
        return b.toString();
    }

    /**
     * Makes this thread the vCPU thread: blocks {@link #KICK_SIGNAL} in it (so the signal is never delivered
     * and needs no handler), and tells KVM to run the guest with this thread's mask minus the kick signal
     * ({@code KVM_SET_SIGNAL_MASK}, the kernel's 8-byte sigset), so a kick pending or arriving during
     * {@code KVM_RUN} ends it with EINTR.
     */
    private void enterRunThread() {
        if (Thread.currentThread().isVirtual()) {
            throw new IllegalStateException("vCPU " + id + " must run on a platform thread (signals target OS threads)");
        }
        synchronized (kickLock) {
            if (closed) {
                throw new IllegalStateException("vCPU " + id + " is closed");
            }
            if (runThread != 0) {
                throw new IllegalStateException("vCPU " + id + " is already running on another thread");
            }
            try (Arena a = Arena.ofConfined()) {
                MemorySegment old = a.allocate(Libc.SIGSET_T_BYTES, 8);
                Libc.pthreadSigmask(Libc.SIG_BLOCK, kickSet, old);
                MemorySegment mask = a.allocate(kvm_signal_mask.sizeof() + 8, 8);
                kvm_signal_mask.len(mask, 8);
                long bits = old.get(JAVA_LONG, 0) & ~(1L << (KICK_SIGNAL - 1));
                mask.set(JAVA_LONG_UNALIGNED, kvm_signal_mask.sigset$offset(), bits);
                Libc.ioctl(fd, kvm_h.KVM_SET_SIGNAL_MASK(), mask, "KVM_SET_SIGNAL_MASK vCPU " + id);
            }
            runThread = Libc.pthreadSelf();
        }
    }

    /**
     * Leaves the kick signal blocked in this thread: unblocking it with a kick still queued would deliver it,
     * and its default action ends the process. Kicks already queued are taken first.
     */
    private void leaveRunThread() {
        synchronized (kickLock) {
            runThread = 0;
            drainKicks();
            kickLock.notifyAll();
        }
    }

    /** Takes every queued {@link #KICK_SIGNAL} of this thread ({@code sigtimedwait} with a zero timeout). */
    private void drainKicks() {
        int r;
        do {
            r = Libc.sigtimedwaitRaw(kickSet, zeroTimeout);
        } while (r == KICK_SIGNAL || r == -Errno.EINTR);
    }

    /**
     * Forces the vCPU out of {@code KVM_RUN} once, from any thread: sets {@code kvm_run.immediate_exit} (for
     * a thread about to enter KVM_RUN) and sends {@link #KICK_SIGNAL} to the vCPU thread (for one inside it,
     * e.g. halted in the kernel). {@link #run} then goes on unless {@link #requestStop()} was called.
     */
    public void kick() {
        synchronized (kickLock) {
            if (closed) {
                return;
            }
            kvm_run.immediate_exit(run, (byte) 1);
            if (runThread != 0) {
                Libc.pthreadKill(runThread, KICK_SIGNAL);
            }
        }
    }

    /** Makes {@link #run} return {@link VcpuExit.Reason#STOPPED} soon, from any thread. */
    public void requestStop() {
        stop = true;
        kick();
    }

    /**
     * Stops the vCPU if it runs (waiting up to 5 s for {@link #run} to return), unmaps kvm_run and closes
     * the vCPU fd.
     *
     * @throws IllegalStateException if the vCPU thread did not leave {@link #run} in time
     */
    @Override
    public void close() {
        synchronized (kickLock) {
            if (closed) {
                return;
            }
            if (runThread != 0) {
                requestStop();
                long deadline = System.nanoTime() + 5_000_000_000L;
                while (runThread != 0 && System.nanoTime() < deadline) {
                    try {
                        kickLock.wait(100);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
                if (runThread != 0) {
                    throw new IllegalStateException("vCPU " + id + " did not stop within 5 s; not closing it");
                }
            }
            closed = true;
            Libc.munmap(run);
            Libc.close(fd);
            arena.close();
        }
    }
}
