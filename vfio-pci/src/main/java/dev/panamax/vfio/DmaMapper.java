package dev.panamax.vfio;

import java.lang.foreign.MemorySegment;

/**
 * Makes host memory reachable by a device's DMA at an I/O virtual address: the kernel's Type1 IOMMU
 * ({@link VfioContainer}) or a vfio-user server ({@code VFIO_USER_DMA_MAP}).
 */
public interface DmaMapper {
    /**
     * Maps {@code host} (its host-virtual address, {@code host.byteSize()} bytes) at {@code iova}, readable and
     * writable by the device.
     *
     * @param iova the I/O virtual address; for a guest's device, its guest-physical address
     */
    void mapDma(long iova, MemorySegment host);

    /** Unmaps {@code [iova, iova + size)}, exactly as mapped. */
    void unmapDma(long iova, long size);
}
