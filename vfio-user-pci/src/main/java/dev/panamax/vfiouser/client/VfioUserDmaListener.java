package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.vfiouser.protocol.DmaMapCodec;

/**
 * Mirrors guest RAM into a vfio-user server (spec, "VFIO_USER_DMA_MAP", "VFIO_USER_DMA_UNMAP"): every
 * {@link RamRegion} of the address space becomes a DMA_MAP range, readable and writable, whose DMA address (IOVA)
 * is the guest-physical address, carrying the region's memfd (SCM_RIGHTS) and the region's offset in it so that
 * the server can mmap guest RAM; a region going away is unmapped first. MMIO and reserved regions are not RAM and
 * are skipped. The server's DMA_READ / DMA_WRITE messages are served by the client from the same ranges, through
 * the regions' host mappings. Usage:
 * <pre>{@code
 *   VfioUserDmaListener dma = new VfioUserDmaListener(client);
 *   guestAddressSpace.addListener(dma);      // maps the RAM present now, and later RAM as it comes
 *   ...
 *   guestAddressSpace.removeListener(dma);   // unmaps everything, before client.close()
 * }</pre>
 * Without fds ({@code passFds} false, or a RAM region with fd -1, or a server with {@code max_msg_fds} 0) the
 * server cannot mmap and must use DMA_READ / DMA_WRITE messages (the "forced message path").
 */
public final class VfioUserDmaListener implements MemoryListener {
    private final VfioUserClient client;
    private final boolean passFds;

    /** Maps guest RAM with its memfds. */
    public VfioUserDmaListener(VfioUserClient client) {
        this(client, true);
    }

    /**
     * @param passFds false: map every range without fd, so that the server reaches guest RAM by messages only
     */
    public VfioUserDmaListener(VfioUserClient client, boolean passFds) {
        this.client = client;
        this.passFds = passFds;
    }

    /**
     * DMA_MAP of a RAM region.
     *
     * @throws IllegalArgumentException when the region does not suit the server (page size, max_dma_maps, overlap)
     * @throws VfioUserClientException  when the server refuses the map (nothing is sent to a broken device)
     */
    @Override
    public void regionAdded(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            client.dmaMap(ram.guestPhysicalAddress(), ram.size(), ram.host(), passFds ? ram.fd() : -1,
                    ram.fdOffset(), dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE());
        }
    }

    /** DMA_UNMAP of a RAM region; when it returns the server no longer touches it (unless it misbehaves). */
    @Override
    public void regionRemoved(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            client.dmaUnmap(ram.guestPhysicalAddress(), ram.size());
        }
    }
}
