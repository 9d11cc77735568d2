package dev.panamax.core.memory;

import java.lang.foreign.MemorySegment;

/**
 * Guest RAM: guest-physical {@code [guestPhysicalAddress, +size)} backed by host memory.
 * Listeners mirror it: KVM as a memslot, VFIO as an IOMMU mapping (IOVA = guest-physical address),
 * vfio-user as a {@code DMA_MAP} carrying {@code fd} at {@code fdOffset}.
 *
 * @param name                 a short name, e.g. {@code "ram-low"}
 * @param guestPhysicalAddress first guest-physical address (page aligned)
 * @param size                 bytes (a multiple of the page size)
 * @param host                 the host mapping, {@code size} bytes; {@code host.address()} is the host-virtual address
 * @param fd                   the memfd the pages live in, or -1 for anonymous memory
 * @param fdOffset             byte offset of the region's first page in {@code fd}
 */
public record RamRegion(String name, long guestPhysicalAddress, long size, MemorySegment host, int fd, long fdOffset)
        implements MemoryRegion {
    public RamRegion {
        if (host.byteSize() != size) {
            throw new IllegalArgumentException(name + ": host mapping is " + host.byteSize() + " bytes, region " + size);
        }
    }
}
