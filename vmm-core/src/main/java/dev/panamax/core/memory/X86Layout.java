package dev.panamax.core.memory;

/**
 * Where things are in an x86 guest's physical address space as Panamax lays it out.
 *
 * <pre>
 * 0x0000_0000 .. lowRamEnd          RAM (lowRamEnd = min(RAM, PCI_HOLE_START))
 * 0xC000_0000 .. 0xFEC0_0000        32-bit PCI MMIO window (BARs)
 * 0xFEC0_0000                       IOAPIC
 * 0xFEE0_0000                       local APIC
 * 0x1_0000_0000 ..                  the rest of RAM
 * </pre>
 */
public final class X86Layout {
    /** Start of the 32-bit PCI hole: RAM stops here and resumes at 4 GiB. */
    public static final long PCI_HOLE_START = 0xC000_0000L;
    /** 4 GiB: where RAM above the hole starts. */
    public static final long HIGH_RAM_START = 0x1_0000_0000L;
    /** The IOAPIC's MMIO base (KVM's in-kernel IOAPIC sits here). */
    public static final long IOAPIC_BASE = 0xFEC0_0000L;
    /** The local APIC's MMIO base. */
    public static final long LAPIC_BASE = 0xFEE0_0000L;
    /** The KVM TSS (3 pages) that Intel VMX needs for real mode; reserved just below the BIOS. */
    public static final long KVM_TSS_ADDRESS = 0xFFFB_D000L;
    /** The one-page identity map table KVM needs on Intel for unrestricted guests. */
    public static final long KVM_IDENTITY_MAP_ADDRESS = 0xFFFB_C000L;

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
}
