package dev.panamax.core.memory;

/**
 * Receives every change of an {@link AddressSpace}. The one idea of Panamax's memory model: guest
 * RAM is registered once, and each listener mirrors it in its own world (KVM memslots,
 * {@code VFIO_IOMMU_MAP_DMA}, vfio-user {@code DMA_MAP}).
 *
 * <p>A listener added to an address space that already holds regions first receives
 * {@link #regionAdded} for each of them, in address order. Callbacks run on the thread that
 * changed the address space.
 *
 * <p>A listener refuses a region by throwing from {@link #regionAdded}; that aborts the change, all
 * or nothing: the listeners that already accepted the region (or, when a listener is being added,
 * the regions it already accepted) receive {@link #regionRemoved}, in reverse order, and the
 * exception reaches the caller of {@link AddressSpace#add} or {@link AddressSpace#addListener}.
 * A listener that throws has not taken the region: it receives no {@link #regionRemoved} for it.
 */
public interface MemoryListener {
    /** A region appeared. */
    void regionAdded(MemoryRegion region);

    /** A region is going away; after this returns the listener must not touch its memory. */
    void regionRemoved(MemoryRegion region);
}
