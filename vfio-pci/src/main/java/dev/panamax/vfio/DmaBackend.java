package dev.panamax.vfio;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.vfio.bindings.vfio_h;

/**
 * An IOMMU as the VMM drives it: makes host memory reachable by a device's DMA at an I/O virtual address (IOVA),
 * and takes it away again. Two implementations, as QEMU's container classes ({@code hw/vfio/container.c} for the
 * kernel, {@code hw/vfio-user/container.c} for vfio-user): the kernel's Type1 IOMMU ({@link VfioContainer},
 * {@code VFIO_IOMMU_MAP_DMA} of the region's host-virtual address) and a vfio-user server (the client's DMA
 * backend, {@code VFIO_USER_DMA_MAP} with the region's fd and offset). {@link DmaMemoryListener} feeds either from
 * the guest's address space.
 *
 * <p>Flags are those of {@code struct vfio_iommu_type1_dma_map} in {@code <linux/vfio.h>}:
 * {@link #READ} ({@code VFIO_DMA_MAP_FLAG_READ}, bit 0) and {@link #WRITE} ({@code VFIO_DMA_MAP_FLAG_WRITE}, bit 1).
 * vfio-user's DMA_MAP flags are the same bits (spec, "VFIO_USER_DMA_MAP": bit 0 readable, bit 1 writeable).
 */
public interface DmaBackend {
    /** {@code VFIO_DMA_MAP_FLAG_READ}: the device may read the memory. */
    int READ = vfio_h.VFIO_DMA_MAP_FLAG_READ();
    /** {@code VFIO_DMA_MAP_FLAG_WRITE}: the device may write the memory. */
    int WRITE = vfio_h.VFIO_DMA_MAP_FLAG_WRITE();

    /**
     * Maps all of {@code region} ({@code region.size()} bytes) at {@code iova}. A backend uses what it can reach the
     * memory by: its host-virtual address ({@code region.host()}), or the fd it lives in ({@code region.fd()} at
     * {@code region.fdOffset()}; -1: anonymous memory).
     *
     * @param iova  the I/O virtual address, bytes; for a guest's device, the region's guest-physical address
     * @param flags {@link #READ} | {@link #WRITE}
     * @throws RuntimeException when the IOMMU refuses (the backend says why); nothing is mapped then
     */
    void dmaMap(long iova, RamRegion region, int flags);

    /**
     * Unmaps {@code [iova, iova + size)}, exactly as mapped; when it returns the device no longer reaches it.
     *
     * @param size bytes
     */
    void dmaUnmap(long iova, long size);
}
