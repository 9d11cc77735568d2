package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.bindings.vfio_h;

import java.util.List;

/**
 * One region of a vfio-user device, by its vfio index (linux/vfio.h {@code VFIO_PCI_BAR0_REGION_INDEX}
 * 0 .. {@code VFIO_PCI_BAR5_REGION_INDEX} 5, {@code VFIO_PCI_ROM_REGION_INDEX} 6,
 * {@code VFIO_PCI_CONFIG_REGION_INDEX} 7). Either trapped (every access is a message served by a
 * {@link RegionHandler}) or backed by a memfd that the client may mmap (spec,
 * "VFIO_USER_DEVICE_GET_REGION_INFO": FLAG_MMAP, the fd in the reply, the sparse mmap capability).
 *
 * @param index       vfio region index, 0..8
 * @param size        bytes
 * @param readable    VFIO_REGION_INFO_FLAG_READ
 * @param writable    VFIO_REGION_INFO_FLAG_WRITE
 * @param handler     for a trapped region; null for a memfd-backed one
 * @param memFd       for a memfd-backed region (owned by the caller, who closes it after the server); else null
 * @param fileOffset  byte offset of the region in the memfd (the {@code offset} field of the region info reply)
 * @param mmapAreas   the parts the client may mmap, offsets relative to the region; empty for a trapped region
 */
public record VfioUserRegion(int index, long size, boolean readable, boolean writable, RegionHandler handler,
                             MemFd memFd, long fileOffset, List<Area> mmapAreas) {
    public VfioUserRegion {
        if (index < 0 || index >= vfio_h.VFIO_PCI_NUM_REGIONS()) {
            throw new IllegalArgumentException("region index " + index + " is not 0.." + (vfio_h.VFIO_PCI_NUM_REGIONS() - 1));
        }
        if (size <= 0) {
            throw new IllegalArgumentException("region " + index + " size " + size + " must be positive");
        }
        if ((handler == null) == (memFd == null)) {
            throw new IllegalArgumentException("region " + index + " needs exactly one of a handler or a memfd");
        }
        mmapAreas = List.copyOf(mmapAreas);
        if (memFd != null) {
            if (fileOffset < 0 || fileOffset + size > memFd.size()) {
                throw new IllegalArgumentException("region " + index + " bytes " + fileOffset + "+" + size
                        + " do not fit the memfd " + memFd.name() + " of " + memFd.size() + " bytes");
            }
            for (Area a : mmapAreas) {
                if (a.offset() < 0 || a.size() <= 0 || a.offset() + a.size() > size) {
                    throw new IllegalArgumentException("region " + index + " mmap area " + a + " lies outside its " + size + " bytes");
                }
            }
        }
    }

    /** A trapped, readable and writable region of {@code size} bytes served by {@code handler}. */
    public static VfioUserRegion trapped(int index, long size, RegionHandler handler) {
        return new VfioUserRegion(index, size, true, true, handler, null, 0, List.of());
    }

    /** A region that is the whole of {@code memFd}, mmappable as a whole. */
    public static VfioUserRegion memfd(int index, MemFd memFd) {
        return new VfioUserRegion(index, memFd.size(), true, true, null, memFd, 0, List.of(new Area(0, memFd.size())));
    }

    /**
     * A region backed by {@code size} bytes of {@code memFd} from {@code fileOffset}; only {@code areas}
     * may be mmapped (page-aligned, relative to the region), the rest is reached by messages.
     */
    public static VfioUserRegion memfd(int index, MemFd memFd, long fileOffset, long size, List<Area> areas) {
        return new VfioUserRegion(index, size, true, true, null, memFd, fileOffset, areas);
    }

    /** @return true when a memfd backs the region */
    public boolean mappable() {
        return memFd != null;
    }
}
