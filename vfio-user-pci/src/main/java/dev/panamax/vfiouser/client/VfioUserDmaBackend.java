package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.vfio.DmaBackend;

/**
 * The vfio-user client's IOMMU backend (spec, "VFIO_USER_DMA_MAP", "VFIO_USER_DMA_UNMAP"; QEMU:
 * {@code hw/vfio-user/container.c}): a mapped {@link RamRegion} becomes a DMA_MAP range whose DMA address is the
 * IOVA, carrying the region's fd (SCM_RIGHTS) and the region's offset in it so that the server can mmap guest RAM.
 * Without fds ({@link VfioUserClient.Options#dmaFds()} false, a region with fd -1, or a server with
 * {@code max_msg_fds} 0) the server cannot mmap and must use DMA_READ / DMA_WRITE messages (the "forced message
 * path"), which the client serves from the same ranges through the regions' host mappings.
 */
public final class VfioUserDmaBackend implements DmaBackend {
    private final VfioUserClient client;
    private final boolean passFds;

    VfioUserDmaBackend(VfioUserClient client, boolean passFds) {
        this.client = client;
        this.passFds = passFds;
    }

    /** @return whether DMA_MAP carries the region's fd (false: the forced message path) */
    public boolean passesFds() {
        return passFds;
    }

    /**
     * DMA_MAP of {@code region} at {@code iova}.
     *
     * @throws IllegalArgumentException when the region does not suit the server (page size, max_dma_maps, overlap)
     * @throws VfioUserClientException  when the server refuses the map (nothing is sent to a broken device)
     */
    @Override
    public void dmaMap(long iova, RamRegion region, int flags) {
        client.dmaMap(iova, region.size(), region.host(), passFds ? region.fd() : -1, region.fdOffset(), flags);
    }

    /** DMA_UNMAP; when it returns the server no longer touches the range (unless it misbehaves). */
    @Override
    public void dmaUnmap(long iova, long size) {
        client.dmaUnmap(iova, size);
    }
}
