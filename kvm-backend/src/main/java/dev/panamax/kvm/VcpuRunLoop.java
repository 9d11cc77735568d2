package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_run;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

/**
 * The run loop of one vCPU, for one {@link KvmVcpu#run} call on the vCPU thread: {@code KVM_RUN} again and
 * again, each exit ({@code kvm_run.exit_reason}, a {@code KVM_EXIT_*} of {@code linux/kvm.h}; kernel
 * {@code Documentation/virt/kvm/api.rst}, "The kvm_run structure") counted in {@link ExitCounts} and handled:
 * port I/O and MMIO to the two {@link Bus}es, the exits that end the run returned as a {@link VcpuStop},
 * failures thrown. As {@code kvm_cpu__start} in kvmtool's {@code kvm-cpu.c} or Firecracker's {@code run_emulation}.
 *
 * <p>The hot path allocates nothing: {@code KVM_RUN} captures errno in the vCPU's own segment
 * ({@link KvmVcpu#kvmRun()}), bus data goes through the kvm_run page as {@code long}s, the counts are array
 * increments, and per-exit tracing ({@code dev.panamax.trace.kvm}, with the bus traces of {@code --trace}) is
 * looked at once per run.
 */
final class VcpuRunLoop {
    /** Per-exit tracing, with the bus traces of {@code --trace} ({@code dev.panamax.trace.pio/mmio}). */
    private static final Logger trace = LoggerFactory.getLogger("dev.panamax.trace.kvm");

    private final KvmVcpu vcpu;
    private final int id;
    /** The vCPU's kvm_run page. */
    private final MemorySegment run;
    private final Bus pio;
    private final Bus mmio;
    private final ExitCounts counts;
    private final boolean tracing;

    /**
     * @param run    the vCPU's mapped {@code struct kvm_run}
     * @param pio    port I/O exits go here (port numbers)
     * @param mmio   MMIO exits go here (guest-physical addresses)
     * @param counts where the exits are counted
     */
    VcpuRunLoop(KvmVcpu vcpu, MemorySegment run, Bus pio, Bus mmio, ExitCounts counts) {
        this.vcpu = vcpu;
        this.id = vcpu.id();
        this.run = run;
        this.pio = pio;
        this.mmio = mmio;
        this.counts = counts;
        this.tracing = trace.isTraceEnabled();
    }

    /**
     * Runs until the vCPU stops; the caller has made this thread the vCPU thread.
     *
     * @return why it stopped
     * @throws KvmException on {@code KVM_EXIT_FAIL_ENTRY}, {@code KVM_EXIT_INTERNAL_ERROR} or an exit Panamax
     *                      does not handle
     * @throws LinuxException if {@code KVM_RUN} fails with another errno than EINTR or EAGAIN
     */
    VcpuStop loop() {
        // Set after a port I/O or MMIO exit was handled, until the next KVM_RUN: that KVM_RUN is what completes the
        // access in the guest (an IN's value into RAX, RIP past the instruction; api.rst, "KVM_RUN": "the
        // corresponding operations are complete (and guest state is consistent) only after userspace has re-entered
        // the kernel with KVM_RUN"). A stop waits for it, so the vCPU state a snapshot saves is whole: the kick
        // set immediate_exit, so that KVM_RUN completes the access and returns EINTR at once.
        boolean accessPending = false;
        while (true) {
            if (!accessPending && vcpu.stopRequested()) {
                return new VcpuStop(VcpuStop.Reason.STOPPED, "vCPU " + id + " stopped");
            }
            int r = vcpu.kvmRun();
            accessPending = false;
            if (r < 0) {
                if (-r == Errno.EINTR || -r == Errno.EAGAIN) {
                    counts.interrupted++;
                    // Kicked (immediate_exit or KICK_SIGNAL) or another signal: take the kick, look at stop, go on.
                    vcpu.takeKick();
                    continue;
                }
                throw new LinuxException("KVM_RUN vCPU " + id, -r);
            }
            int reason = kvm_run.exit_reason(run);
            counts.exit(reason);
            if (reason == kvm_h.KVM_EXIT_IO()) {
                io();
                accessPending = true;
            } else if (reason == kvm_h.KVM_EXIT_MMIO()) {
                mmio();
                accessPending = true;
            } else if (reason == kvm_h.KVM_EXIT_HLT()) {
                return new VcpuStop(VcpuStop.Reason.HALTED, "vCPU " + id + " halted (KVM_EXIT_HLT)");
            } else if (reason == kvm_h.KVM_EXIT_SHUTDOWN()) {
                return new VcpuStop(VcpuStop.Reason.SHUTDOWN,
                        "vCPU " + id + " shut down (KVM_EXIT_SHUTDOWN: triple fault) at rip 0x" + Long.toHexString(vcpu.rip()));
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
                                : "", vcpu.rip()));
            }
        }
    }

    /** KVM_EXIT_IO: {@code count} accesses of {@code size} bytes at {@code port}; data at {@code data_offset} in kvm_run. */
    private void io() {
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
                pio.write(port, size, load(run, data, size), counts.pio);
            } else {
                store(run, data, size, pio.read(port, size, counts.pio));
            }
        }
    }

    /** KVM_EXIT_MMIO: one access of {@code len} bytes at {@code phys_addr}; data in {@code mmio.data[8]}. */
    private void mmio() {
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
            mmio.write(address, len, load(run, data, len), counts.mmio);
        } else {
            store(run, data, len, mmio.read(address, len, counts.mmio));
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

    /** KVM_EXIT_SYSTEM_EVENT: {@code system_event.type} says what the guest asked for. */
    private VcpuStop systemEvent() {
        int type = kvm_run.system_event_type(run);
        if (type == kvm_h.KVM_SYSTEM_EVENT_SHUTDOWN()) {
            return new VcpuStop(VcpuStop.Reason.POWER_OFF, "vCPU " + id + ": guest powered off (KVM_SYSTEM_EVENT_SHUTDOWN)");
        } else if (type == kvm_h.KVM_SYSTEM_EVENT_RESET()) {
            return new VcpuStop(VcpuStop.Reason.RESET, "vCPU " + id + ": guest asked for a reset (KVM_SYSTEM_EVENT_RESET)");
        } else if (type == kvm_h.KVM_SYSTEM_EVENT_CRASH()) {
            return new VcpuStop(VcpuStop.Reason.CRASH, "vCPU " + id + ": guest crashed (KVM_SYSTEM_EVENT_CRASH)");
        }
        return new VcpuStop(VcpuStop.Reason.SYSTEM_EVENT, "vCPU " + id + ": KVM_EXIT_SYSTEM_EVENT type " + type);
    }

    /** @return the message for KVM_EXIT_INTERNAL_ERROR: the suberror's name, its data words, and RIP */
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
            b.append(" at rip 0x").append(Long.toHexString(vcpu.rip()));
        } catch (RuntimeException e) {
            b.append(" (rip unreadable: ").append(e.getMessage()).append(')');
        }
        return b.toString();
    }
}
