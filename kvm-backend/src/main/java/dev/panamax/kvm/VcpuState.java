package dev.panamax.kvm;

import dev.panamax.kvm.bindings.kvm_debugregs;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_sregs;
import dev.panamax.kvm.bindings.kvm_vcpu_events;
import dev.panamax.kvm.bindings.kvm_xcrs;
import dev.panamax.kvm.bindings.kvm_xsave;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * The state KVM holds for one x86 vCPU, as {@link KvmVcpu#saveState()} reads it and {@link KvmVcpu#restoreState}
 * puts it back ({@link X86VcpuState}). Each {@code byte[]} is a kernel struct of {@code <linux/kvm.h>} /
 * {@code <asm/kvm.h>} (x86-64, little-endian) exactly as the {@code KVM_GET_*} ioctl returned it:
 *
 * <ul>
 * <li>{@code regs}: {@code struct kvm_regs} (144 bytes, {@code KVM_GET_REGS});</li>
 * <li>{@code sregs}: {@code struct kvm_sregs} (312 bytes, {@code KVM_GET_SREGS});</li>
 * <li>{@code xsave}: {@code struct kvm_xsave}, the XSAVE image of the FPU/SSE/AVX state: 4096 bytes from
 *     {@code KVM_GET_XSAVE}, or {@code KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)} bytes (at least 4096, a multiple of 4)
 *     from {@code KVM_GET_XSAVE2};</li>
 * <li>{@code xcrs}: {@code struct kvm_xcrs} (392 bytes, {@code KVM_GET_XCRS}; XCR0);</li>
 * <li>{@code lapic}: {@code struct kvm_lapic_state} (1024 bytes, {@code KVM_GET_LAPIC}; the local APIC's register page);</li>
 * <li>{@code events}: {@code struct kvm_vcpu_events} (64 bytes, {@code KVM_GET_VCPU_EVENTS}; pending exception,
 *     interrupt, NMI, SMI);</li>
 * <li>{@code debugregs}: {@code struct kvm_debugregs} (128 bytes, {@code KVM_GET_DEBUGREGS}; DR0-3, DR6, DR7).</li>
 * </ul>
 *
 * <p>{@code mpState} is {@code KVM_GET_MP_STATE}'s {@code KVM_MP_STATE_*} value; {@code msrs} are the MSRs of
 * {@code KVM_GET_MSR_INDEX_LIST} that {@code KVM_GET_MSRS} could read, in that list's order (among them
 * IA32_TIME_STAMP_COUNTER 0x10 and the kvmclock MSRs 0x4b564d00/0x4b564d01).
 *
 * <p>A plain record for Jackson: {@code byte[]} components serialize as base64. The constructor checks every
 * size (an {@link IllegalArgumentException} naming the piece) and copies the arrays; the accessors return copies.
 *
 * @param id        the vCPU id (its APIC id)
 * @param regs      {@code struct kvm_regs}
 * @param sregs     {@code struct kvm_sregs}
 * @param xsave     {@code struct kvm_xsave}, 4096 bytes or more
 * @param xcrs      {@code struct kvm_xcrs}
 * @param lapic     {@code struct kvm_lapic_state}
 * @param events    {@code struct kvm_vcpu_events}
 * @param debugregs {@code struct kvm_debugregs}
 * @param mpState   {@code KVM_MP_STATE_*}
 * @param msrs      the readable MSRs, index and value
 */
public record VcpuState(int id, byte[] regs, byte[] sregs, byte[] xsave, byte[] xcrs, byte[] lapic, byte[] events,
                        byte[] debugregs, int mpState, List<MsrValue> msrs) {

    /** The size of {@code struct kvm_xsave} without its flexible tail: what {@code KVM_GET_XSAVE} returns. */
    public static final int XSAVE_LEGACY_BYTES = (int) kvm_xsave.sizeof();

    /** One MSR as {@code struct kvm_msr_entry} carries it: index and 64-bit value. */
    public record MsrValue(int index, long value) {
        @Override
        public String toString() {
            return String.format("MSR 0x%x = 0x%x", index, value);
        }
    }

    /**
     * @throws IllegalArgumentException if the id is negative or a struct has the wrong size (the message names it)
     * @throws NullPointerException     if a component is null
     */
    public VcpuState {
        if (id < 0) {
            throw new IllegalArgumentException("VcpuState: negative vCPU id " + id);
        }
        regs = sized(id, "regs", regs, kvm_regs.sizeof(), "struct kvm_regs");
        sregs = sized(id, "sregs", sregs, kvm_sregs.sizeof(), "struct kvm_sregs");
        Objects.requireNonNull(xsave, () -> "VcpuState of vCPU " + id + ": xsave is null");
        if (xsave.length < XSAVE_LEGACY_BYTES || xsave.length % 4 != 0) {
            throw new IllegalArgumentException(String.format("VcpuState of vCPU %d: xsave is %d bytes; struct kvm_xsave "
                    + "is at least %d, a multiple of 4", id, xsave.length, XSAVE_LEGACY_BYTES));
        }
        xsave = xsave.clone();
        xcrs = sized(id, "xcrs", xcrs, kvm_xcrs.sizeof(), "struct kvm_xcrs");
        lapic = sized(id, "lapic", lapic, kvm_lapic_state.sizeof(), "struct kvm_lapic_state");
        events = sized(id, "events", events, kvm_vcpu_events.sizeof(), "struct kvm_vcpu_events");
        debugregs = sized(id, "debugregs", debugregs, kvm_debugregs.sizeof(), "struct kvm_debugregs");
        msrs = List.copyOf(Objects.requireNonNull(msrs, () -> "VcpuState of vCPU " + id + ": msrs is null"));
    }

    private static byte[] sized(int id, String piece, byte[] b, long size, String struct) {
        Objects.requireNonNull(b, () -> "VcpuState of vCPU " + id + ": " + piece + " is null");
        if (b.length != size) {
            throw new IllegalArgumentException(String.format("VcpuState of vCPU %d: %s is %d bytes, %s is %d",
                    id, piece, b.length, struct, size));
        }
        return b.clone();
    }

    /** @return a copy of {@code struct kvm_regs} */
    @Override
    public byte[] regs() {
        return regs.clone();
    }

    /** @return a copy of {@code struct kvm_sregs} */
    @Override
    public byte[] sregs() {
        return sregs.clone();
    }

    /** @return a copy of {@code struct kvm_xsave} (4096 bytes or more) */
    @Override
    public byte[] xsave() {
        return xsave.clone();
    }

    /** @return a copy of {@code struct kvm_xcrs} */
    @Override
    public byte[] xcrs() {
        return xcrs.clone();
    }

    /** @return a copy of {@code struct kvm_lapic_state} */
    @Override
    public byte[] lapic() {
        return lapic.clone();
    }

    /** @return a copy of {@code struct kvm_vcpu_events} */
    @Override
    public byte[] events() {
        return events.clone();
    }

    /** @return a copy of {@code struct kvm_debugregs} */
    @Override
    public byte[] debugregs() {
        return debugregs.clone();
    }

    /** Equal when every component is: the arrays by content. */
    @Override
    public boolean equals(Object o) {
        return o instanceof VcpuState s && id == s.id && mpState == s.mpState && Arrays.equals(regs, s.regs)
                && Arrays.equals(sregs, s.sregs) && Arrays.equals(xsave, s.xsave) && Arrays.equals(xcrs, s.xcrs)
                && Arrays.equals(lapic, s.lapic) && Arrays.equals(events, s.events)
                && Arrays.equals(debugregs, s.debugregs) && msrs.equals(s.msrs);
    }

    @Override
    public int hashCode() {
        int h = Objects.hash(id, mpState, msrs);
        for (byte[] b : List.of(regs, sregs, xsave, xcrs, lapic, events, debugregs)) {
            h = 31 * h + Arrays.hashCode(b);
        }
        return h;
    }

    /** Sizes and counts, not contents. */
    @Override
    public String toString() {
        return String.format("VcpuState[id=%d, mpState=%d, xsave=%d bytes, %d MSRs]", id, mpState, xsave.length,
                msrs.size());
    }
}
