package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_mp_state;
import dev.panamax.kvm.bindings.kvm_msr_entry;
import dev.panamax.kvm.bindings.kvm_msrs;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_run;
import dev.panamax.kvm.bindings.kvm_signal_mask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Instant;
import java.util.List;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;

/**
 * One KVM vCPU (kernel {@code Documentation/virt/kvm/api.rst}, section 4, "vcpu ioctls"): its file
 * descriptor and the ioctls Panamax makes on it, its shared {@code struct kvm_run} page, and the kick that
 * forces it out of {@code KVM_RUN}. What the vCPU is set up as lies elsewhere: {@link KvmVm#createVcpu}
 * configures it for an x86 PC with {@link X86VcpuSetup}, and {@link #run} hands it to a {@link VcpuRunLoop},
 * which takes its exits to the buses.
 *
 * <p>{@link #requestStop()} from any other thread makes {@link #run} return: it sets
 * {@code kvm_run.immediate_exit} and sends {@link #KICK_SIGNAL} to the vCPU thread, which is blocked in the
 * thread but unblocked during {@code KVM_RUN} ({@code KVM_SET_SIGNAL_MASK}), so it ends a {@code KVM_RUN}
 * sleeping in the kernel (a halted vCPU) with EINTR without ever being delivered: no signal handler is needed.
 */
public final class KvmVcpu implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvmVcpu.class);

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

    /** The {@code KVM_RUN} ioctl request, computed once ({@code _IO(KVMIO, 0x80)}). */
    private static final long KVM_RUN = kvm_h.KVM_RUN();

    /** A model-specific register for {@link #setMsrs}: index, value, and its name in the Intel SDM (Vol. 4, chapter 2). */
    public record Msr(int index, long value, String name) {
    }

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

    /** What this vCPU's exits were (--stats): they outlast a run; the run loop's thread writes them. */
    private final ExitCounts exitCounts = new ExitCounts();
    /** When {@link #run} first entered its loop (the first {@code KVM_RUN}, for --stats), or null; set once. */
    private volatile Instant firstRun;

    private final Object kickLock = new Object();
    /** The pthread_t running {@link #run}, or 0; guarded by kickLock. */
    private long runThread;
    private volatile boolean stop;
    private boolean closed;

    /** {@code KVM_CREATE_VCPU} and the kvm_run mapping; the vCPU has KVM's reset state (see {@link KvmVm#createVcpu}). */
    KvmVcpu(KvmVm vm, int id) {
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
        } catch (RuntimeException e) {
            if (mapping != null) {
                Libc.munmap(mapping);
            }
            Libc.close(fd);
            arena.close();
            throw e;
        }
        this.run = mapping;
        log.debug("vCPU {}: fd {}, kvm_run {} bytes", id, fd, run.byteSize());
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

    /**
     * @return the wall-clock time at which {@link #run} was first about to issue {@code KVM_RUN} (taken once, before
     *         the run loop, so the loop itself does no more work), or empty if it never ran
     */
    public Optional<Instant> firstRun() {
        return Optional.ofNullable(firstRun);
    }

    // ---- vcpu ioctls (api.rst section 4); struct arguments are segments laid out as in linux/kvm.h ----

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

    /** {@code KVM_SET_FPU} with a {@code struct kvm_fpu}. */
    public void setFpu(MemorySegment fpu) {
        Libc.ioctl(fd, kvm_h.KVM_SET_FPU(), fpu, "KVM_SET_FPU vCPU " + id);
    }

    /** {@code KVM_GET_LAPIC} into a {@code struct kvm_lapic_state} (the local APIC's 1 KiB register page). */
    public void getLapic(MemorySegment lapic) {
        Libc.ioctl(fd, kvm_h.KVM_GET_LAPIC(), lapic, "KVM_GET_LAPIC vCPU " + id);
    }

    /** {@code KVM_SET_LAPIC} from a {@code struct kvm_lapic_state}. */
    public void setLapic(MemorySegment lapic) {
        Libc.ioctl(fd, kvm_h.KVM_SET_LAPIC(), lapic, "KVM_SET_LAPIC vCPU " + id);
    }

    /** {@code KVM_GET_SREGS} into a {@code struct kvm_sregs}. */
    public void getSregs(MemorySegment sregs) {
        Libc.ioctl(fd, kvm_h.KVM_GET_SREGS(), sregs, "KVM_GET_SREGS vCPU " + id);
    }

    /** {@code KVM_SET_SREGS} from a {@code struct kvm_sregs}. */
    public void setSregs(MemorySegment sregs) {
        Libc.ioctl(fd, kvm_h.KVM_SET_SREGS(), sregs, "KVM_SET_SREGS vCPU " + id);
    }

    /** {@code KVM_GET_REGS} into a {@code struct kvm_regs}. */
    public void getRegs(MemorySegment regs) {
        Libc.ioctl(fd, kvm_h.KVM_GET_REGS(), regs, "KVM_GET_REGS vCPU " + id);
    }

    /** {@code KVM_SET_REGS} from a {@code struct kvm_regs}. */
    public void setRegs(MemorySegment regs) {
        Libc.ioctl(fd, kvm_h.KVM_SET_REGS(), regs, "KVM_SET_REGS vCPU " + id);
    }

    /**
     * Loads the 64-bit boot protocol's register state ({@link X86VcpuSetup#setBootState}).
     *
     * @throws IllegalArgumentException if a segment field does not fit {@code struct kvm_segment}
     */
    public void setBootState(X86BootState boot) {
        X86VcpuSetup.setBootState(this, boot);
    }

    /** @return the vCPU's RIP ({@code KVM_GET_REGS}), for diagnostics */
    public long rip() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment regs = kvm_regs.allocate(a);
            getRegs(regs);
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
     * Runs the vCPU on the calling thread until it stops ({@link VcpuRunLoop}): {@code KVM_RUN} in a loop,
     * port I/O exits to {@code pio} (port numbers), MMIO exits to {@code mmio} (guest-physical addresses).
     *
     * @return why it stopped: {@link #requestStop()}, HLT, triple fault, or a system event (power off, reset, crash)
     * @throws KvmException on {@code KVM_EXIT_FAIL_ENTRY}, {@code KVM_EXIT_INTERNAL_ERROR} or an exit Panamax
     *                      does not handle; the message gives the hardware reason or suberror and RIP
     * @throws IllegalStateException if called on a virtual thread or while another thread runs this vCPU
     */
    public VcpuStop run(Bus pio, Bus mmio) {
        enterRunThread();
        if (firstRun == null) {
            firstRun = Instant.now();
        }
        try {
            return new VcpuRunLoop(this, run, pio, mmio, exitCounts).loop();
        } finally {
            leaveRunThread();
        }
    }

    /**
     * {@code KVM_RUN} once, on the vCPU thread, with this vCPU's own errno capture segment: nothing is
     * allocated. The exit is then in {@code kvm_run.exit_reason}.
     *
     * @return 0, or {@code -errno} (EINTR or EAGAIN after a kick)
     */
    int kvmRun() {
        return Libc.ioctlRaw(runErrno, fd, KVM_RUN, 0);
    }

    /** @return whether {@link #requestStop()} was called */
    boolean stopRequested() {
        return stop;
    }

    /** On the vCPU thread after a kick: takes the queued kick signals and clears {@code kvm_run.immediate_exit}. */
    void takeKick() {
        drainKicks();
        kvm_run.immediate_exit(run, (byte) 0);
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

    /**
     * Makes {@link #run} return {@link VcpuStop.Reason#STOPPED} soon, from any thread, once the port or MMIO access
     * it is handling (if any) is complete in the guest: the vCPU's state is then whole, as a snapshot needs it.
     */
    public void requestStop() {
        stop = true;
        kick();
    }

    /**
     * Forgets {@link #requestStop()}, so that {@link #run} can be called again: how a paused vCPU resumes. Called by
     * the thread that runs the vCPU, after {@link #run} returned.
     */
    public void clearStop() {
        stop = false;
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

    // ---- the vCPU's state (snapshot, restore, migration) ----

    /**
     * Reads everything KVM holds for this vCPU ({@link X86VcpuState#save}); the vCPU must not be running.
     *
     * @throws dev.panamax.core.sys.LinuxException if KVM refuses an ioctl; the message names it
     */
    public VcpuState saveState() {
        return X86VcpuState.save(this, vm);
    }

    /**
     * Puts a saved state back ({@link X86VcpuState#restore}, QEMU's order); the vCPU must not be running.
     *
     * @throws IllegalArgumentException if {@code state} is of another vCPU id or does not fit this host's KVM
     * @throws KvmException             if KVM refuses a saved MSR (the message gives its index)
     * @throws dev.panamax.core.sys.LinuxException if KVM refuses another ioctl; the message names it
     */
    public void restoreState(VcpuState state) {
        X86VcpuState.restore(this, vm, state);
    }
}
