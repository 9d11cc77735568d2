package dev.panamax.vfio;

import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamRegion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Mirrors guest RAM into a device's IOMMU ({@link DmaBackend}): each {@link RamRegion} of the address space is
 * mapped, readable and writable, with IOVA = its guest-physical address, so that the device's DMA to a
 * guest-physical address reaches the right page; a region going away is unmapped first. MMIO and reserved regions
 * are not memory and are skipped. QEMU's counterpart is the container's {@code MemoryListener}
 * ({@code vfio_memory_listener} in {@code hw/vfio/listener.c}). Usage:
 * <pre>{@code
 *   DmaMemoryListener dma = new DmaMemoryListener(container);   // or a vfio-user client's dma()
 *   guestAddressSpace.addListener(dma);      // maps the RAM present now, and later RAM as it comes
 *   ...
 *   guestAddressSpace.removeListener(dma);   // unmaps everything, before the backend closes
 * }</pre>
 * A map the backend refuses makes the address space refuse the region (see {@link MemoryListener}).
 */
public final class DmaMemoryListener implements MemoryListener {
    private static final Logger LOG = LoggerFactory.getLogger(DmaMemoryListener.class);
    private final DmaBackend backend;

    public DmaMemoryListener(DmaBackend backend) {
        this.backend = backend;
    }

    /** @return the backend this listener maps into */
    public DmaBackend backend() {
        return backend;
    }

    @Override
    public void regionAdded(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            LOG.debug("DMA map {} iova 0x{} +0x{}", ram.name(), Long.toHexString(ram.guestPhysicalAddress()), Long.toHexString(ram.size()));
            backend.dmaMap(ram.guestPhysicalAddress(), ram, DmaBackend.READ | DmaBackend.WRITE);
        }
    }

    @Override
    public void regionRemoved(MemoryRegion region) {
        if (region instanceof RamRegion ram) {
            LOG.debug("DMA unmap {} iova 0x{}", ram.name(), Long.toHexString(ram.guestPhysicalAddress()));
            backend.dmaUnmap(ram.guestPhysicalAddress(), ram.size());
        }
    }
}
