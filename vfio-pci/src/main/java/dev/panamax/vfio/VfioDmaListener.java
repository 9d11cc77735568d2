package dev.panamax.vfio;

import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamRegion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Mirrors guest RAM into a device's IOMMU: each {@link RamRegion} of the address space is mapped with IOVA =
 * its guest-physical address and vaddr = its host-virtual address, so the assigned device's DMA to a
 * guest-physical address reaches the right page ({@code VFIO_IOMMU_MAP_DMA}, READ|WRITE). MMIO and reserved
 * regions are not memory and are skipped.
 */
public final class VfioDmaListener implements MemoryListener {
    private static final Logger LOG = LoggerFactory.getLogger(VfioDmaListener.class);
    private final DmaMapper mapper;

    public VfioDmaListener(DmaMapper mapper) {
        this.mapper = mapper;
    }

    @Override
    public void regionAdded(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            LOG.debug("DMA map {} iova 0x{} +0x{}", ram.name(), Long.toHexString(ram.guestPhysicalAddress()), Long.toHexString(ram.size()));
            mapper.mapDma(ram.guestPhysicalAddress(), ram.host());
        }
    }

    @Override
    public void regionRemoved(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            LOG.debug("DMA unmap {} iova 0x{}", ram.name(), Long.toHexString(ram.guestPhysicalAddress()));
            mapper.unmapDma(ram.guestPhysicalAddress(), ram.size());
        }
    }
}
