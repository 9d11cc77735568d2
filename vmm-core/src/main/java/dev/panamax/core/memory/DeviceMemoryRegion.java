package dev.panamax.core.memory;

import java.lang.foreign.MemorySegment;

/**
 * A device's memory mapped straight into the guest: part of an assigned device's BAR that this process has
 * mmapped (from a VFIO device file, or from an fd a vfio-user server gave). KVM mirrors it as a memory slot, so
 * the guest's loads and stores reach the device with no exit. It is not RAM: DMA listeners (VFIO's IOMMU,
 * vfio-user {@code DMA_MAP}) leave it out, and nothing may keep a reference to it after its removal.
 *
 * @param name                 e.g. {@code "0000:00:04.0-bar0"}
 * @param guestPhysicalAddress first guest-physical address (page aligned)
 * @param size                 bytes (a multiple of the page size)
 * @param host                 the host mapping, {@code size} bytes; {@code host.address()} is its host-virtual address
 */
public record DeviceMemoryRegion(String name, long guestPhysicalAddress, long size, MemorySegment host)
        implements MemoryRegion {
    public DeviceMemoryRegion {
        if (host.byteSize() != size) {
            throw new IllegalArgumentException(name + ": host mapping is " + host.byteSize() + " bytes, region " + size);
        }
    }
}
