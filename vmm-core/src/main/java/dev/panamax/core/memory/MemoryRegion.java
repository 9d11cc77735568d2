package dev.panamax.core.memory;

/**
 * A range of guest-physical address space with a meaning: RAM, device memory mapped into the guest,
 * device MMIO that traps, or reserved.
 * Addresses and sizes are in bytes.
 */
public sealed interface MemoryRegion permits RamRegion, DeviceMemoryRegion, MmioRegion, ReservedRegion {
    /** @return a short name for logs and {@code --trace}, e.g. {@code "ram-low"} */
    String name();

    /** @return the first guest-physical address */
    long guestPhysicalAddress();

    /** @return the length in bytes */
    long size();

    /** @return the guest-physical address one past the last byte */
    default long end() {
        return guestPhysicalAddress() + size();
    }

    /** @return whether {@code [gpa, gpa + length)} lies inside this region */
    default boolean contains(long gpa, long length) {
        return gpa >= guestPhysicalAddress() && length >= 0 && gpa + length <= end() && gpa + length >= gpa;
    }
}
