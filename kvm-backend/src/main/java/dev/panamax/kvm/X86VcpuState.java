package dev.panamax.kvm;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_debugregs;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_msr_entry;
import dev.panamax.kvm.bindings.kvm_msr_list;
import dev.panamax.kvm.bindings.kvm_msrs;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_sregs;
import dev.panamax.kvm.bindings.kvm_vcpu_events;
import dev.panamax.kvm.bindings.kvm_xcrs;
import dev.panamax.kvm.bindings.kvm_xsave;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Saves and restores a {@link KvmVcpu}'s state ({@link VcpuState}) with the ioctls KVM made for it (kernel
 * {@code Documentation/virt/kvm/api.rst}, section 4: {@code KVM_GET/SET_REGS}, {@code _SREGS}, {@code _XSAVE}
 * ({@code KVM_GET_XSAVE2}), {@code _XCRS}, {@code _MSRS}, {@code _MP_STATE}, {@code _LAPIC}, {@code _VCPU_EVENTS},
 * {@code _DEBUGREGS}). The orders and their reasons follow QEMU ({@code target/i386/kvm/kvm.c},
 * {@code kvm_arch_put_registers}) and Firecracker ({@code src/vmm/src/arch/x86_64/vcpu.rs}, {@code save_state},
 * {@code restore_state}).
 *
 * <p>The vCPU must not be running ({@link KvmVcpu#run} returned, or not yet called) while its state is read or
 * written, and for {@code KVM_GET/SET_VCPU_EVENTS} no other vCPU of the VM should run either.
 */
public final class X86VcpuState {
    private static final Logger log = LoggerFactory.getLogger(X86VcpuState.class);

    /** IA32_TIME_STAMP_COUNTER (Intel SDM Vol. 4, table 2-2). */
    public static final int MSR_IA32_TSC = 0x10;
    /** IA32_TSC_DEADLINE: written again after the LAPIC, which drops it unless its timer is in TSC-deadline mode. */
    public static final int MSR_IA32_TSC_DEADLINE = 0x6e0;
    /** kvmclock's wall clock ({@code MSR_KVM_WALL_CLOCK_NEW}, {@code Documentation/virt/kvm/x86/msr.rst}). */
    public static final int MSR_KVM_WALL_CLOCK_NEW = 0x4b564d00;
    /** kvmclock's per-vCPU time page ({@code MSR_KVM_SYSTEM_TIME_NEW}, same document). */
    public static final int MSR_KVM_SYSTEM_TIME_NEW = 0x4b564d01;
    /** Saved even where {@code KVM_GET_MSR_INDEX_LIST} leaves them out: without them guest time would jump. */
    static final List<Integer> REQUIRED_MSRS = List.of(MSR_IA32_TSC, MSR_KVM_WALL_CLOCK_NEW, MSR_KVM_SYSTEM_TIME_NEW);
    /** KVM refuses {@code KVM_GET/SET_MSRS} with {@code nmsrs >= MAX_IO_MSRS} (256; arch/x86/kvm/x86.c). */
    static final int MSRS_PER_IOCTL = 255;

    private X86VcpuState() {
    }

    /**
     * Reads the vCPU's state. The order is Firecracker's: {@code KVM_GET_MP_STATE} first (it runs
     * {@code kvm_apic_accept_events}, which may change LAPIC and vCPU state), then regs, sregs, XSAVE, XCRs, debug
     * registers, LAPIC, MSRs, and the vCPU events last (the other GETs may change what they hold).
     *
     * @param vm the VM the vCPU belongs to (for {@code KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)} and the MSR list)
     * @throws LinuxException if KVM refuses an ioctl; the message names it
     */
    public static VcpuState save(KvmVcpu vcpu, KvmVm vm) {
        int id = vcpu.id();
        try (Arena a = Arena.ofConfined()) {
            int mpState = vcpu.mpState();
            byte[] regs = get(vcpu, a, kvm_regs.sizeof(), kvm_h.KVM_GET_REGS(), "KVM_GET_REGS");
            byte[] sregs = get(vcpu, a, kvm_sregs.sizeof(), kvm_h.KVM_GET_SREGS(), "KVM_GET_SREGS");
            int xsaveBytes = xsaveBytes(vm);
            byte[] xsave = xsaveBytes > VcpuState.XSAVE_LEGACY_BYTES
                    ? get(vcpu, a, xsaveBytes, kvm_h.KVM_GET_XSAVE2(), "KVM_GET_XSAVE2")
                    : get(vcpu, a, kvm_xsave.sizeof(), kvm_h.KVM_GET_XSAVE(), "KVM_GET_XSAVE");
            byte[] xcrs = get(vcpu, a, kvm_xcrs.sizeof(), kvm_h.KVM_GET_XCRS(), "KVM_GET_XCRS");
            byte[] debugregs = get(vcpu, a, kvm_debugregs.sizeof(), kvm_h.KVM_GET_DEBUGREGS(), "KVM_GET_DEBUGREGS");
            byte[] lapic = get(vcpu, a, kvm_lapic_state.sizeof(), kvm_h.KVM_GET_LAPIC(), "KVM_GET_LAPIC");
            List<VcpuState.MsrValue> msrs = readMsrs(vcpu, msrsToSave(vm.kvm()));
            byte[] events = get(vcpu, a, kvm_vcpu_events.sizeof(), kvm_h.KVM_GET_VCPU_EVENTS(), "KVM_GET_VCPU_EVENTS");
            VcpuState s = new VcpuState(id, regs, sregs, xsave, xcrs, lapic, events, debugregs, mpState, msrs);
            log.debug("vCPU {}: saved {}", id, s);
            return s;
        }
    }

    /**
     * Puts a saved state into a vCPU created by {@link KvmVm#createVcpu} (CPUID set as when it was saved), in the
     * order of QEMU's {@code kvm_arch_put_registers}: regs, XSAVE, XCRs, sregs (EFER and the APIC base before the
     * MSRs and the LAPIC), MSRs, MP state, LAPIC, IA32_TSC_DEADLINE once more (the LAPIC drops it while its timer is
     * not in TSC-deadline mode; QEMU's {@code kvm_put_tscdeadline_msr}), vCPU events (after regs, as
     * {@code KVM_SET_REGS} clears pending exceptions), debug registers. Everything is checked before the first
     * ioctl.
     *
     * <p>{@code KVM_SET_VCPU_EVENTS} gets the saved struct with {@code KVM_VCPUEVENT_VALID_NMI_PENDING} and
     * {@code KVM_VCPUEVENT_VALID_SIPI_VECTOR} added to its flags ({@code KVM_GET_VCPU_EVENTS} does not set them,
     * and without them KVM ignores the saved NMI pending and SIPI vector), as QEMU's {@code kvm_put_vcpu_events} does.
     * An {@code xsave} shorter than this host's {@code KVM_CAP_XSAVE2} size is padded with zeros (the components it
     * lacks stay in their initial state: its XSTATE_BV does not name them).
     *
     * @throws IllegalArgumentException if the state is of another vCPU id, or its xsave is larger than this host's
     *                                  {@code struct kvm_xsave}
     * @throws KvmException             if {@code KVM_SET_MSRS} refuses an MSR (the message gives its index and value)
     * @throws LinuxException           if KVM refuses another ioctl; the message names it
     */
    public static void restore(KvmVcpu vcpu, KvmVm vm, VcpuState state) {
        int id = vcpu.id();
        if (state.id() != id) {
            throw new IllegalArgumentException("VcpuState of vCPU " + state.id() + " cannot be restored into vCPU " + id);
        }
        byte[] xsave = state.xsave();
        int xsaveBytes = xsaveBytes(vm);
        if (xsave.length > xsaveBytes) {
            throw new IllegalArgumentException(String.format("VcpuState of vCPU %d: xsave is %d bytes, this host's "
                    + "struct kvm_xsave is %d (KVM_CAP_XSAVE2)", id, xsave.length, xsaveBytes));
        }
        List<VcpuState.MsrValue> msrs = new ArrayList<>(state.msrs().size());
        List<VcpuState.MsrValue> deadline = new ArrayList<>(1);
        for (VcpuState.MsrValue m : state.msrs()) {
            (m.index() == MSR_IA32_TSC_DEADLINE ? deadline : msrs).add(m);
        }
        byte[] events = withValidFlags(state.events());
        try (Arena a = Arena.ofConfined()) {
            set(vcpu, a, state.regs(), state.regs().length, kvm_h.KVM_SET_REGS(), "KVM_SET_REGS");
            set(vcpu, a, xsave, xsaveBytes, kvm_h.KVM_SET_XSAVE(), "KVM_SET_XSAVE");
            set(vcpu, a, state.xcrs(), state.xcrs().length, kvm_h.KVM_SET_XCRS(), "KVM_SET_XCRS");
            set(vcpu, a, state.sregs(), state.sregs().length, kvm_h.KVM_SET_SREGS(), "KVM_SET_SREGS");
            writeMsrs(vcpu, msrs);
            vcpu.setMpState(state.mpState());
            set(vcpu, a, state.lapic(), state.lapic().length, kvm_h.KVM_SET_LAPIC(), "KVM_SET_LAPIC");
            writeMsrs(vcpu, deadline);
            set(vcpu, a, events, events.length, kvm_h.KVM_SET_VCPU_EVENTS(), "KVM_SET_VCPU_EVENTS");
            set(vcpu, a, state.debugregs(), state.debugregs().length, kvm_h.KVM_SET_DEBUGREGS(), "KVM_SET_DEBUGREGS");
        }
        log.debug("vCPU {}: restored {}", id, state);
    }

    /** @return a copy of a {@code struct kvm_vcpu_events} with the NMI-pending and SIPI-vector valid flags set */
    static byte[] withValidFlags(byte[] events) {
        byte[] copy = events.clone();
        // A heap segment of byte[] is only byte-aligned, so not the binding's aligned int accessor: a ByteBuffer.
        ByteBuffer b = ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN);
        int at = (int) kvm_vcpu_events.flags$offset();
        b.putInt(at, b.getInt(at) | kvm_h.KVM_VCPUEVENT_VALID_NMI_PENDING() | kvm_h.KVM_VCPUEVENT_VALID_SIPI_VECTOR());
        return copy;
    }

    /**
     * @return the size of {@code struct kvm_xsave} on this VM: {@code KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)} on the VM
     *         fd (at least 4096; more where the process enabled dynamic XSAVE features such as AMX), or 4096
     *         ({@code KVM_GET_XSAVE}) on kernels without {@code KVM_CAP_XSAVE2} (before 5.17)
     */
    public static int xsaveBytes(KvmVm vm) {
        int r = Libc.ioctl(vm.fd(), kvm_h.KVM_CHECK_EXTENSION(), kvm_h.KVM_CAP_XSAVE2(), "KVM_CHECK_EXTENSION KVM_CAP_XSAVE2");
        return Math.max(r, VcpuState.XSAVE_LEGACY_BYTES);
    }

    /**
     * @return {@code KVM_GET_MSR_INDEX_LIST} on the {@code /dev/kvm} fd (the MSRs KVM saves and emulates), with
     *         {@link #REQUIRED_MSRS} appended where missing
     * @throws LinuxException if KVM refuses
     */
    public static int[] msrsToSave(Kvm kvm) {
        try (Arena a = Arena.ofConfined()) {
            // With nmsrs 0 KVM answers E2BIG and writes the count it needs.
            MemorySegment probe = a.allocate(kvm_msr_list.sizeof(), 8);
            int r = Libc.ioctlRaw(kvm.fd(), kvm_h.KVM_GET_MSR_INDEX_LIST(), probe);
            if (r < 0 && r != -Errno.E2BIG) {
                throw new LinuxException("KVM_GET_MSR_INDEX_LIST", -r);
            }
            int n = kvm_msr_list.nmsrs(probe);
            MemorySegment list = a.allocate(kvm_msr_list.sizeof() + (long) n * JAVA_INT.byteSize(), 8);
            kvm_msr_list.nmsrs(list, n);
            Libc.ioctl(kvm.fd(), kvm_h.KVM_GET_MSR_INDEX_LIST(), list, "KVM_GET_MSR_INDEX_LIST (" + n + " MSRs)");
            Set<Integer> indices = new LinkedHashSet<>();
            for (int i = 0; i < kvm_msr_list.nmsrs(list); i++) {
                indices.add(kvm_msr_list.indices(list, i));
            }
            indices.addAll(REQUIRED_MSRS);
            return indices.stream().mapToInt(Integer::intValue).toArray();
        }
    }

    /**
     * {@code KVM_GET_MSRS} for {@code indices}, {@link #MSRS_PER_IOCTL} at a time. KVM returns how many it read,
     * stopping at the first it cannot: that one is skipped (logged at DEBUG) and the rest read on.
     *
     * @return the readable MSRs, in the order of {@code indices}
     */
    static List<VcpuState.MsrValue> readMsrs(KvmVcpu vcpu, int[] indices) {
        List<VcpuState.MsrValue> out = new ArrayList<>(indices.length);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(kvm_msrs.sizeof() + MSRS_PER_IOCTL * kvm_msr_entry.sizeof(), 8);
            int i = 0;
            while (i < indices.length) {
                int count = Math.min(MSRS_PER_IOCTL, indices.length - i);
                s.fill((byte) 0);
                kvm_msrs.nmsrs(s, count);
                for (int k = 0; k < count; k++) {
                    kvm_msr_entry.index(kvm_msrs.entries(s, k), indices[i + k]);
                }
                int read = Libc.ioctl(vcpu.fd(), kvm_h.KVM_GET_MSRS(), s, "KVM_GET_MSRS vCPU " + vcpu.id());
                for (int k = 0; k < read; k++) {
                    MemorySegment e = kvm_msrs.entries(s, k);
                    out.add(new VcpuState.MsrValue(kvm_msr_entry.index(e), kvm_msr_entry.data(e)));
                }
                i += read;
                if (read < count) {
                    log.debug("vCPU {}: KVM_GET_MSRS cannot read MSR 0x{}; not saved", vcpu.id(),
                            Integer.toHexString(indices[i]));
                    i++;
                }
            }
        }
        return out;
    }

    /**
     * {@code KVM_SET_MSRS}, {@link #MSRS_PER_IOCTL} at a time.
     *
     * @throws KvmException naming the first MSR KVM refused (its index and value)
     */
    static void writeMsrs(KvmVcpu vcpu, List<VcpuState.MsrValue> msrs) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(kvm_msrs.sizeof() + MSRS_PER_IOCTL * kvm_msr_entry.sizeof(), 8);
            for (int i = 0; i < msrs.size(); i += MSRS_PER_IOCTL) {
                int count = Math.min(MSRS_PER_IOCTL, msrs.size() - i);
                s.fill((byte) 0);
                kvm_msrs.nmsrs(s, count);
                for (int k = 0; k < count; k++) {
                    MemorySegment e = kvm_msrs.entries(s, k);
                    kvm_msr_entry.index(e, msrs.get(i + k).index());
                    kvm_msr_entry.data(e, msrs.get(i + k).value());
                }
                // Returns how many it set, stopping at the first it refuses.
                int set = Libc.ioctl(vcpu.fd(), kvm_h.KVM_SET_MSRS(), s, "KVM_SET_MSRS vCPU " + vcpu.id());
                if (set < count) {
                    VcpuState.MsrValue bad = msrs.get(i + set);
                    throw new KvmException(String.format("KVM_SET_MSRS vCPU %d: KVM refused MSR 0x%x = 0x%x",
                            vcpu.id(), bad.index(), bad.value()));
                }
            }
        }
    }

    /** A GET ioctl into a zeroed buffer of {@code bytes}; returns the bytes. */
    private static byte[] get(KvmVcpu vcpu, Arena a, long bytes, long request, String name) {
        MemorySegment s = a.allocate(bytes, 8);
        Libc.ioctl(vcpu.fd(), request, s, name + " vCPU " + vcpu.id());
        return s.toArray(JAVA_BYTE);
    }

    /** A SET ioctl from {@code data}, zero-padded to {@code bytes}. */
    private static void set(KvmVcpu vcpu, Arena a, byte[] data, long bytes, long request, String name) {
        MemorySegment s = a.allocate(bytes, 8);
        MemorySegment.copy(data, 0, s, JAVA_BYTE, 0, data.length);
        Libc.ioctl(vcpu.fd(), request, s, name + " vCPU " + vcpu.id());
    }
}
