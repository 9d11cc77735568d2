package dev.panamax.core.memory;

/**
 * A guest-physical range that is neither RAM nor trapped MMIO, e.g. the BIOS area or the 32-bit
 * PCI hole, kept so that nothing else is placed there.
 *
 * @param name                 e.g. {@code "pci-hole"}
 * @param guestPhysicalAddress first guest-physical address
 * @param size                 bytes
 */
public record ReservedRegion(String name, long guestPhysicalAddress, long size) implements MemoryRegion {
}
