package dev.panamax.core.memory;

import java.util.List;

/**
 * Where things are in an x86 guest's physical address space as Panamax lays it out: every guest-physical address
 * that more than one module uses is here, once (as Firecracker's {@code arch/x86_64/layout.rs}). The boot loader's
 * own addresses (zero page, command line, page tables, MP table) stay in the firmware module.
 *
 * <pre>
 * 0x0000_0000 .. lowRamEnd          RAM (lowRamEnd = min(RAM, PCI_HOLE_START))
 * 0xC000_0000 .. 0xFEC0_0000        32-bit PCI MMIO window (BARs)
 * 0xFEC0_0000 .. +4 KiB             IOAPIC
 * 0xFEE0_0000 .. +4 KiB             local APIC
 * 0xFFFB_C000 .. +4 KiB             KVM's EPT identity map page
 * 0xFFFB_D000 .. +12 KiB            KVM's real-mode TSS
 * 0x1_0000_0000 ..                  the rest of RAM
 * </pre>
 * The ranges the VMM owns in the hole ({@link #reservedRegions()}) go into the {@link AddressSpace} as
 * {@link ReservedRegion}s, so that no BAR or memory slot is placed over them; the 32-bit MMIO window is not
 * reserved: BARs live there.
 */
public final class X86Layout {
    /** Start of the 32-bit PCI hole: RAM stops here and resumes at 4 GiB. */
    public static final long PCI_HOLE_START = 0xC000_0000L;
    /** 4 GiB: where RAM above the hole starts. */
    public static final long HIGH_RAM_START = 0x1_0000_0000L;
    /** The IOAPIC's MMIO base (KVM's in-kernel IOAPIC sits here; 82093AA datasheet, 3.0). */
    public static final long IOAPIC_BASE = 0xFEC0_0000L;
    /** Bytes reserved for the IOAPIC: one page (its registers take 0x40 of it). */
    public static final long IOAPIC_SIZE = 0x1000;
    /** The local APIC's MMIO base (Intel SDM vol. 3A, 11.4.1: IA32_APIC_BASE's reset value). */
    public static final long LAPIC_BASE = 0xFEE0_0000L;
    /** Bytes of the local APIC's register page. */
    public static final long LAPIC_SIZE = 0x1000;
    /**
     * The three pages KVM needs for the real-mode TSS on Intel VMX ({@code KVM_SET_TSS_ADDR}, kernel
     * Documentation/virt/kvm/api.rst): just below the 4 GiB BIOS area, where QEMU and Firecracker put it.
     */
    public static final long KVM_TSS_ADDRESS = 0xFFFB_D000L;
    /** Bytes of the KVM TSS: three pages. */
    public static final long KVM_TSS_SIZE = 3 * 0x1000;
    /** The one page KVM needs for the EPT identity map on Intel ({@code KVM_SET_IDENTITY_MAP_ADDR}), below the TSS. */
    public static final long KVM_IDENTITY_MAP_ADDRESS = 0xFFFB_C000L;
    /** Bytes of the identity map page. */
    public static final long KVM_IDENTITY_MAP_SIZE = 0x1000;

    private X86Layout() {
    }

    /** @return bytes of RAM below the PCI hole for a guest of {@code ramBytes} */
    public static long lowRamBytes(long ramBytes) {
        return Math.min(ramBytes, PCI_HOLE_START);
    }

    /** @return bytes of RAM at and above 4 GiB for a guest of {@code ramBytes} */
    public static long highRamBytes(long ramBytes) {
        return ramBytes - lowRamBytes(ramBytes);
    }

    /**
     * The fixed ranges the VMM and KVM own in the PCI hole, for the machine to add to its {@link AddressSpace}:
     * the IOAPIC, the local APIC, KVM's identity map page and TSS. The 32-bit MMIO window below the IOAPIC is not
     * among them: BARs are placed there.
     */
    public static List<ReservedRegion> reservedRegions() {
        return List.of(
                new ReservedRegion("ioapic", IOAPIC_BASE, IOAPIC_SIZE),
                new ReservedRegion("lapic", LAPIC_BASE, LAPIC_SIZE),
                new ReservedRegion("kvm-identity-map", KVM_IDENTITY_MAP_ADDRESS, KVM_IDENTITY_MAP_SIZE),
                new ReservedRegion("kvm-tss", KVM_TSS_ADDRESS, KVM_TSS_SIZE));
    }
}
