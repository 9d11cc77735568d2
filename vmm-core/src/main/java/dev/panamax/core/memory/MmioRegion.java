package dev.panamax.core.memory;

/**
 * A guest-physical range whose accesses trap to a device model (KVM_EXIT_MMIO). It has no host
 * memory behind it; the MMIO bus routes the access.
 *
 * @param name                 e.g. {@code "ioapic"}
 * @param guestPhysicalAddress first guest-physical address
 * @param size                 bytes
 */
public record MmioRegion(String name, long guestPhysicalAddress, long size) implements MemoryRegion {
}
