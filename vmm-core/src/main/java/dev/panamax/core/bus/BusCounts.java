package dev.panamax.core.bus;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Access counts on one {@link Bus} by device, kept by one thread (a vCPU's): plain {@code long}s indexed by
 * {@link Bus.Mapping#id()}, no lock, no allocation per access (the array grows, by doubling, only when a
 * registration newer than any counted so far is first hit). Another thread may read them once the counting
 * thread has ended (after {@link Thread#join()}).
 */
public final class BusCounts {
    private long[] byId = new long[16];
    private long unclaimed;

    /** Counts one access to {@code m}, or to no device if {@code m} is null. */
    public void count(Bus.Mapping m) {
        if (m == null) {
            unclaimed++;
            return;
        }
        int id = m.id();
        if (id >= byId.length) {
            byId = Arrays.copyOf(byId, Math.max(byId.length * 2, id + 1));
        }
        byId[id]++;
    }

    /** @return accesses no device claimed */
    public long unclaimed() {
        return unclaimed;
    }

    /** @return all accesses counted */
    public long total() {
        long t = unclaimed;
        for (long c : byId) {
            t += c;
        }
        return t;
    }

    /**
     * The counts by device name ({@link Bus#nameOf(int)}): registrations of one name (a BAR moved by the guest is
     * registered again) add up. Names in order of first registration; devices never hit are left out; accesses
     * no device claimed under {@code "(unclaimed)"}, last.
     *
     * @param bus the bus these counts were taken on
     */
    public Map<String, Long> byName(Bus bus) {
        Map<String, Long> out = new LinkedHashMap<>();
        for (int id = 0; id < byId.length; id++) {
            if (byId[id] != 0) {
                out.merge(bus.nameOf(id), byId[id], Long::sum);
            }
        }
        if (unclaimed != 0) {
            out.put("(unclaimed)", unclaimed);
        }
        return out;
    }
}
