package dev.panamax.core.memory;

import java.util.List;

/**
 * Where things are in an x86 guest's physical address space as Panamax lays it out: every guest-physical address
 * that more than one module uses is here, once (as Firecracker's {@code arch/x86_64/layout.rs}). The boot loader's
 * own addresses (zero page, command line, page tables, MP table) stay in the firmware module.
 *
 * <pre>
 * 0x0000_0000 .. lowRamEnd          RAM (lowRamEnd = min(RAM, PCI_HOLE_START))
 * 0xC000_0000 .. 0xE000_0000        32-bit PCI MMIO window (BARs): PCI_MMIO32_START .. PCI_MMIO32_END
 * 0xE000_0000 .. 0xF000_0000        PCI Express ECAM, buses 0..255: ECAM_BASE, ECAM_SIZE
 * 0xFEC0_0000 .. +4 KiB             IOAPIC
 * 0xFEE0_0000 .. +4 KiB             local APIC
 * 0xFFFB_C000 .. +4 KiB             KVM's EPT identity map page
 * 0xFFFB_D000 .. +12 KiB            KVM's real-mode TSS
 * 0x1_0000_0000 .. ramEnd           the rest of RAM
 * pciMmio64Start .. pciMmio64End    64-bit PCI MMIO window: from the first 1 GiB boundary at or above the end of
 *                                   RAM (and 4 GiB) to 1 TiB, or less where the guest's physical addresses end
 * </pre>
 * The ranges the VMM owns in the hole ({@link #reservedRegions()}: ECAM, IOAPIC, local APIC, KVM's pages) go into
 * the {@link AddressSpace} as {@link ReservedRegion}s, so that no BAR or memory slot is placed over them; the MMIO
 * windows are not reserved: BARs live there.
 */
public final class X86Layout {
    /** Start of the 32-bit PCI hole: RAM stops here and resumes at 4 GiB. */
    public static final long PCI_HOLE_START = 0xC000_0000L;
    /** 4 GiB: where RAM above the hole starts. */
    public static final long HIGH_RAM_START = 0x1_0000_0000L;
    /** Start of the 32-bit PCI MMIO window, where BARs that must stay below 4 GiB go: the start of the hole. */
    public static final long PCI_MMIO32_START = PCI_HOLE_START;
    /** End (exclusive) of the 32-bit PCI MMIO window: the ECAM window follows it. 512 MiB of BAR space. */
    public static final long PCI_MMIO32_END = 0xE000_0000L;
    /**
     * Base of the PCI Express enhanced configuration access mechanism (ECAM, PCIe Base Spec 6.0, 7.2.2; PCI
     * Firmware Spec 3.3, 4.1.2, the MCFG table): function f of device d on bus b has its 4 KiB of config space at
     * {@code ECAM_BASE + (b << 20 | d << 15 | f << 12)}. Aligned to its size, as the spec asks of the window (a
     * 256 MiB window must be 256 MiB aligned for bus numbers to decode from address bits 27..20). The same address
     * as Cloud Hypervisor's and Firecracker's x86 layouts.
     */
    public static final long ECAM_BASE = 0xE000_0000L;
    /** Bytes of the ECAM window: 256 buses x 32 devices x 8 functions x 4 KiB = 256 MiB. */
    public static final long ECAM_SIZE = 256L << 20;
    /** The first bus number the ECAM window decodes (the MCFG's start bus, the host bridge's {@code _BBN}). */
    public static final int ECAM_START_BUS = 0;
    /** The last bus number the ECAM window decodes. */
    public static final int ECAM_END_BUS = 255;
    /** The 64-bit PCI MMIO window starts on a boundary of this many bytes (1 GiB) above RAM. */
    public static final long PCI_MMIO64_ALIGNMENT = 1L << 30;
    /**
     * The highest end (exclusive) of the 64-bit PCI MMIO window: 1 TiB = 2^40. A BAR must lie below the guest's
     * physical address width (CPUID 0x80000008 EAX[7:0], MAXPHYADDR: Intel SDM vol. 3A, 4.1.4), which KVM takes from
     * the host: 46 bits on Intel server parts, 48 or more on AMD, but 39 on many Intel client parts and 36 on old
     * ones. Linux ignores a host bridge window that ends above it ("host bridge window ... (ignored, not CPU
     * addressable)", drivers/acpi/pci_root.c), so the machine takes {@link #pciMmio64End(int)} of the guest's width.
     * 1 TiB holds several GPUs' many-GiB BARs beside hundreds of GiB of RAM and keeps page tables small.
     */
    public static final long PCI_MMIO64_LIMIT = 1L << 40;
    /** The physical address width assumed when CPUID does not tell (no leaf 0x80000008): 36 bits (Intel SDM 4.1.4). */
    public static final int DEFAULT_PHYSICAL_ADDRESS_BITS = 36;
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
     * @param ramBytes bytes of guest RAM
     * @return guest-physical address where the 64-bit PCI MMIO window starts: the first
     *         {@link #PCI_MMIO64_ALIGNMENT} boundary at or above the end of RAM, and at least 4 GiB
     */
    public static long pciMmio64Start(long ramBytes) {
        long end = HIGH_RAM_START + highRamBytes(ramBytes);
        return (end + PCI_MMIO64_ALIGNMENT - 1) & -PCI_MMIO64_ALIGNMENT;
    }

    /**
     * @param physicalAddressBits the guest's physical address width (CPUID 0x80000008 EAX[7:0]), e.g. 39 or 46
     * @return guest-physical address (exclusive) where the 64-bit PCI MMIO window ends: {@link #PCI_MMIO64_LIMIT},
     *         or 2^{@code physicalAddressBits} when that is lower
     * @throws IllegalArgumentException if the width is not 32..52 bits (the architectural maximum)
     */
    public static long pciMmio64End(int physicalAddressBits) {
        if (physicalAddressBits < 32 || physicalAddressBits > 52) {
            throw new IllegalArgumentException("physical address width " + physicalAddressBits + " bits is not 32..52");
        }
        return Math.min(PCI_MMIO64_LIMIT, 1L << physicalAddressBits);
    }

    /**
     * The fixed ranges the VMM and KVM own in the PCI hole, for the machine to add to its {@link AddressSpace}:
     * the ECAM window, the IOAPIC, the local APIC, KVM's identity map page and TSS. The 32-bit MMIO window below
     * the ECAM window is not among them: BARs are placed there.
     */
    public static List<ReservedRegion> reservedRegions() {
        return List.of(
                new ReservedRegion("pci-ecam", ECAM_BASE, ECAM_SIZE),
                new ReservedRegion("ioapic", IOAPIC_BASE, IOAPIC_SIZE),
                new ReservedRegion("lapic", LAPIC_BASE, LAPIC_SIZE),
                new ReservedRegion("kvm-identity-map", KVM_IDENTITY_MAP_ADDRESS, KVM_IDENTITY_MAP_SIZE),
                new ReservedRegion("kvm-tss", KVM_TSS_ADDRESS, KVM_TSS_SIZE));
    }
}
