package dev.panamax.core.memory;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The guest-physical address space of one VM: non-overlapping {@link MemoryRegion}s, and the
 * {@link MemoryListener}s that mirror them.
 *
 * <p>Reads of the region list are lock-free (a copy-on-write snapshot), so vCPU threads and device
 * DMA may look up RAM while the machine is assembled; changes are serialized.
 */
public final class AddressSpace {
    private volatile List<MemoryRegion> regions = List.of();
    private final List<MemoryListener> listeners = new CopyOnWriteArrayList<>();

    /**
     * Adds a region and tells every listener, all or nothing: when a listener refuses (throws), the listeners that
     * already accepted the region are told it went away ({@link MemoryListener#regionRemoved}, in reverse order),
     * the region is not added, and the listener's exception propagates.
     *
     * @throws IllegalArgumentException if it overlaps a region already present, or is empty
     * @throws RuntimeException         what a refusing listener threw (an undo that fails too is added to it as
     *                                  suppressed)
     */
    public synchronized void add(MemoryRegion region) {
        if (region.size() <= 0 || region.end() < region.guestPhysicalAddress()) {
            throw new IllegalArgumentException("region " + region.name() + " has bad size " + region.size());
        }
        for (MemoryRegion r : regions) {
            if (region.guestPhysicalAddress() < r.end() && r.guestPhysicalAddress() < region.end()) {
                throw new IllegalArgumentException(String.format(
                        "region %s [0x%x, 0x%x) overlaps %s [0x%x, 0x%x)", region.name(),
                        region.guestPhysicalAddress(), region.end(), r.name(), r.guestPhysicalAddress(), r.end()));
            }
        }
        List<MemoryListener> accepted = new ArrayList<>();
        for (MemoryListener l : listeners) {
            try {
                l.regionAdded(region);
            } catch (RuntimeException | Error e) {
                for (MemoryListener a : accepted.reversed()) {
                    undo(a, region, e);
                }
                throw e;
            }
            accepted.add(l);
        }
        List<MemoryRegion> next = new ArrayList<>(regions);
        next.add(region);
        next.sort(Comparator.comparingLong(MemoryRegion::guestPhysicalAddress));
        regions = List.copyOf(next);
    }

    /**
     * Removes a region (the same object that was added) after telling every listener.
     *
     * @throws IllegalArgumentException if it is not present
     */
    public synchronized void remove(MemoryRegion region) {
        if (!regions.contains(region)) {
            throw new IllegalArgumentException("region " + region.name() + " is not in this address space");
        }
        for (MemoryListener l : listeners) {
            l.regionRemoved(region);
        }
        List<MemoryRegion> next = new ArrayList<>(regions);
        next.remove(region);
        regions = List.copyOf(next);
    }

    /**
     * Adds a listener and replays every present region to it, in address order; all or nothing: when the listener
     * refuses a region (throws), it is told that the regions it accepted go away (in reverse order), it is not added,
     * and its exception propagates.
     *
     * @throws RuntimeException what the listener threw (an undo that fails too is added to it as suppressed)
     */
    public synchronized void addListener(MemoryListener listener) {
        List<MemoryRegion> accepted = new ArrayList<>();
        for (MemoryRegion r : regions) {
            try {
                listener.regionAdded(r);
            } catch (RuntimeException | Error e) {
                for (MemoryRegion a : accepted.reversed()) {
                    undo(listener, a, e);
                }
                throw e;
            }
            accepted.add(r);
        }
        listeners.add(listener);
    }

    /** Tells {@code listener} that {@code region}, which it accepted, goes away after all; a failure joins {@code cause}. */
    private static void undo(MemoryListener listener, MemoryRegion region, Throwable cause) {
        try {
            listener.regionRemoved(region);
        } catch (RuntimeException | Error e) {
            cause.addSuppressed(e);
        }
    }

    /** Removes a listener, first telling it that every present region goes away (in reverse order). */
    public synchronized void removeListener(MemoryListener listener) {
        if (listeners.remove(listener)) {
            for (MemoryRegion r : regions.reversed()) {
                listener.regionRemoved(r);
            }
        }
    }

    /** @return the regions, sorted by guest-physical address */
    public List<MemoryRegion> regions() {
        return regions;
    }

    /** @return the RAM regions, sorted by guest-physical address */
    public List<RamRegion> ramRegions() {
        List<RamRegion> ram = new ArrayList<>();
        for (MemoryRegion r : regions) {
            if (r instanceof RamRegion rr) {
                ram.add(rr);
            }
        }
        return ram;
    }

    /**
     * Host memory behind guest RAM, for DMA and for loaders.
     *
     * @param gpa    guest-physical address
     * @param length bytes; the range must lie inside one RAM region
     * @return a segment of {@code length} bytes over the guest's memory
     * @throws IllegalArgumentException if the range is not (wholly) guest RAM
     */
    public MemorySegment ram(long gpa, long length) {
        for (MemoryRegion r : regions) {
            if (r instanceof RamRegion rr && rr.contains(gpa, length)) {
                return rr.host().asSlice(gpa - rr.guestPhysicalAddress(), length);
            }
        }
        throw new IllegalArgumentException(String.format(
                "guest-physical range [0x%x, +0x%x) is not guest RAM", gpa, length));
    }

    /** @return the region holding {@code gpa}, or {@code null} */
    public MemoryRegion find(long gpa) {
        for (MemoryRegion r : regions) {
            if (r.contains(gpa, 1)) {
                return r;
            }
        }
        return null;
    }
}
