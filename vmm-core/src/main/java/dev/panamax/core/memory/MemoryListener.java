package dev.panamax.core.memory;

/**
 * Receives every change of an {@link AddressSpace}. The one idea of Panamax's memory model: guest
 * RAM is registered once, and each listener mirrors it in its own world (KVM memslots,
 * {@code VFIO_IOMMU_MAP_DMA}, vfio-user {@code DMA_MAP}).
 *
 * <p>A listener added to an address space that already holds regions first receives
 * {@link #regionAdded} for each of them, in address order. Callbacks run on the thread that
 * changed the address space; an exception aborts that change.
 */
public interface MemoryListener {
    /** A region appeared. */
    void regionAdded(MemoryRegion region);

    /** A region is going away; after this returns the listener must not touch its memory. */
    void regionRemoved(MemoryRegion region);
}
