package dev.panamax.pci;

/**
 * Told when a BAR starts or stops decoding: the guest moved it, or turned the command register's memory or
 * I/O space enable bit on or off. The machine maps or unmaps the range (on the PIO or MMIO {@code Bus}, or as
 * a KVM memslot). A move is an unmap at the old address followed by a map at the new one.
 *
 * <p>Called on the vCPU thread doing the config write, with the function's lock held.
 */
public interface BarListener {
    /**
     * @param function the function owning the BAR
     * @param index    BAR index 0..5 (the low index of a 64-bit BAR)
     * @param bar      the BAR's description
     * @param address  guest-physical address (memory) or port number (I/O) it now decodes at
     */
    void barMapped(PciFunction function, int index, PciBar bar, long address);

    /**
     * @param function the function owning the BAR
     * @param index    BAR index 0..5
     * @param bar      the BAR's description
     * @param address  the address it decoded at until now
     */
    void barUnmapped(PciFunction function, int index, PciBar bar, long address);
}
