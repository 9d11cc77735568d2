package dev.panamax.kvm;

import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.kvm.bindings.kvm_dtable;
import dev.panamax.kvm.bindings.kvm_fpu;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_segment;
import dev.panamax.kvm.bindings.kvm_sregs;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * A {@link KvmVcpu} set up as an x86 PC's CPU, as Firecracker configures its vCPUs ({@code arch/x86_64}:
 * {@code msr.rs}, {@code regs.rs}, {@code interrupts.rs}): CPUID from
 * {@code KVM_GET_SUPPORTED_CPUID} with the vCPU's APIC id and the VM's topology ({@link Cpuid}), the MSRs a
 * 64-bit Linux boot expects ({@link #BOOT_MSRS}), a reset FPU (FCW 0x37f, MXCSR 0x1f80), and the local
 * APIC's LINT0 as ExtINT (the 8259 PIC's output) and LINT1 as NMI, as a PC BIOS leaves them (Intel MP spec
 * 1.4, 3.6.2, virtual wire mode); then, for the boot vCPU, the boot protocol's registers
 * ({@link #setBootState}).
 */
public final class X86VcpuSetup {
    /** IA32_MISC_ENABLE bit 0: fast-strings enable (REP MOVS/STOS in larger units). */
    static final long MISC_ENABLE_FAST_STRING = 1;
    /** IA32_MTRR_DEF_TYPE: MTRRs enabled (bit 11), default memory type write-back (6). */
    static final long MTRR_DEF_TYPE_ENABLED_WB = (1 << 11) | 6;

    /**
     * The MSRs set before a 64-bit Linux boot, the list Firecracker sets ({@code create_boot_msr_entries}):
     * SYSENTER and SYSCALL targets cleared, TSC = 0, fast strings on, MTRRs on with write-back default.
     */
    public static final List<KvmVcpu.Msr> BOOT_MSRS = List.of(
            new KvmVcpu.Msr(0x174, 0, "IA32_SYSENTER_CS"),
            new KvmVcpu.Msr(0x175, 0, "IA32_SYSENTER_ESP"),
            new KvmVcpu.Msr(0x176, 0, "IA32_SYSENTER_EIP"),
            new KvmVcpu.Msr(0xc0000081, 0, "IA32_STAR"),
            new KvmVcpu.Msr(0xc0000083, 0, "IA32_CSTAR"),
            new KvmVcpu.Msr(0xc0000102, 0, "IA32_KERNEL_GS_BASE"),
            new KvmVcpu.Msr(0xc0000084, 0, "IA32_FMASK (SYSCALL_MASK)"),
            new KvmVcpu.Msr(0xc0000082, 0, "IA32_LSTAR"),
            new KvmVcpu.Msr(0x10, 0, "IA32_TIME_STAMP_COUNTER"),
            new KvmVcpu.Msr(0x1a0, MISC_ENABLE_FAST_STRING, "IA32_MISC_ENABLE"),
            new KvmVcpu.Msr(0x2ff, MTRR_DEF_TYPE_ENABLED_WB, "IA32_MTRR_DEF_TYPE"));

    /** Local APIC register offsets (Intel SDM Vol. 3A, table 11-1) and LVT delivery modes (bits 10:8). */
    static final int APIC_LVT_LINT0 = 0x350;
    static final int APIC_LVT_LINT1 = 0x360;
    static final int APIC_DELIVERY_NMI = 0b100;
    static final int APIC_DELIVERY_EXTINT = 0b111;

    private X86VcpuSetup() {
    }

    /**
     * Sets up a new vCPU in this order: {@code KVM_SET_CPUID2} ({@link Cpuid#forVcpu}), {@code KVM_SET_MSRS}
     * ({@link #BOOT_MSRS}), {@code KVM_SET_FPU} ({@link #setFpuReset}), the LAPIC's LINT0/LINT1
     * ({@link #setLapicVirtualWire}).
     *
     * @param supported the host's {@code KVM_GET_SUPPORTED_CPUID} table
     * @param vcpuCount how many vCPUs the VM will have (for the CPUID topology); the APIC id is the vCPU id
     * @throws IllegalArgumentException if the id or count is out of range for {@link Cpuid#forVcpu}
     * @throws KvmException if KVM refuses a boot MSR
     */
    public static void configure(KvmVcpu vcpu, List<CpuidEntry> supported, int vcpuCount) {
        vcpu.setCpuid(Cpuid.forVcpu(supported, vcpu.id(), vcpuCount));
        vcpu.setMsrs(BOOT_MSRS);
        setFpuReset(vcpu);
        setLapicVirtualWire(vcpu);
    }

    /** {@code KVM_SET_FPU} with the x87/SSE state after FNINIT: FCW 0x37f, MXCSR 0x1f80, all else 0. */
    public static void setFpuReset(KvmVcpu vcpu) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment fpu = kvm_fpu.allocate(a);
            kvm_fpu.fcw(fpu, (short) 0x37f);
            kvm_fpu.mxcsr(fpu, 0x1f80);
            vcpu.setFpu(fpu);
        }
    }

    /** Reads the LAPIC ({@code KVM_GET_LAPIC}), sets LINT0 to ExtINT and LINT1 to NMI, writes it back. */
    public static void setLapicVirtualWire(KvmVcpu vcpu) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment lapic = kvm_lapic_state.allocate(a);
            vcpu.getLapic(lapic);
            setVirtualWire(lapic);
            vcpu.setLapic(lapic);
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
    public static void setBootState(KvmVcpu vcpu, X86BootState boot) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sregs = kvm_sregs.allocate(a);
            vcpu.getSregs(sregs);
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
            vcpu.setSregs(sregs);

            MemorySegment regs = kvm_regs.allocate(a);
            kvm_regs.rip(regs, boot.rip());
            kvm_regs.rsp(regs, boot.rsp());
            kvm_regs.rsi(regs, boot.rsi());
            kvm_regs.rflags(regs, boot.rflags());
            vcpu.setRegs(regs);
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
}
