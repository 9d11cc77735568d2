package dev.panamax.vfio;

import dev.panamax.vfio.VfioRegionInfo.Area;

import java.util.ArrayList;
import java.util.List;

/**
 * Which pages of an assigned device's BAR must trap because they hold the MSI-X table or PBA, which the VMM
 * emulates (the guest's MSI-X programming becomes KVM routes, never device writes), and which areas of the BAR
 * may be mmapped straight into the guest: the region's mmappable areas minus those pages.
 *
 * <p>Traps are whole host pages: a page holding any byte of the table or PBA traps entirely, and its other
 * registers are then reached through region read/write (QEMU does the same; {@code VFIO_REGION_INFO_CAP_MSIX_MAPPABLE}
 * only says the kernel would let those pages be mapped, not that the guest may write the table directly).
 */
public final class MsixPages {
    private MsixPages() {
    }

    /**
     * @param tableOffset the table's byte offset in the BAR
     * @param vectors     table entries (16 bytes each)
     * @param pbaOffset   the PBA's byte offset in the BAR, or -1 if the PBA lives in another BAR
     * @param pageSize    the host page size, a power of two (4096 on x86)
     * @return the page-aligned ranges that must trap, sorted and merged
     */
    public static List<Area> trapped(long tableOffset, int vectors, long pbaOffset, long pageSize) {
        List<Area> ranges = new ArrayList<>();
        ranges.add(pageRange(tableOffset, (long) vectors * 16, pageSize));
        if (pbaOffset >= 0) {
            ranges.add(pageRange(pbaOffset, (vectors + 63) / 64 * 8L, pageSize));
        }
        ranges.sort((a, b) -> Long.compare(a.offset(), b.offset()));
        List<Area> merged = new ArrayList<>();
        for (Area r : ranges) {
            if (!merged.isEmpty() && merged.getLast().offset() + merged.getLast().size() >= r.offset()) {
                Area last = merged.removeLast();
                long end = Math.max(last.offset() + last.size(), r.offset() + r.size());
                merged.add(new Area(last.offset(), end - last.offset()));
            } else {
                merged.add(r);
            }
        }
        return merged;
    }

    private static Area pageRange(long offset, long length, long pageSize) {
        if (Long.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("page size " + pageSize + " is not a power of two");
        }
        long start = offset & -pageSize;
        long end = (offset + length + pageSize - 1) & -pageSize;
        return new Area(start, end - start);
    }

    /**
     * @param allowed what the region allows to mmap ({@link VfioRegionInfo#mmapAreas()})
     * @param trapped what must trap ({@link #trapped})
     * @return {@code allowed} minus {@code trapped}, in order, without empty areas
     */
    public static List<Area> mappable(List<Area> allowed, List<Area> trapped) {
        List<Area> out = new ArrayList<>();
        for (Area a : allowed) {
            long start = a.offset();
            long end = a.offset() + a.size();
            for (Area t : trapped) {
                long ts = t.offset();
                long te = t.offset() + t.size();
                if (te <= start || ts >= end) {
                    continue;
                }
                if (ts > start) {
                    out.add(new Area(start, ts - start));
                }
                start = Math.max(start, te);
            }
            if (end > start) {
                out.add(new Area(start, end - start));
            }
        }
        return out;
    }
}
