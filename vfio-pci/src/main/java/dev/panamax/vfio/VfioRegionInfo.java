package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_info_cap_header;
import dev.panamax.vfio.bindings.vfio_region_info;
import dev.panamax.vfio.bindings.vfio_region_info_cap_sparse_mmap;
import dev.panamax.vfio.bindings.vfio_region_sparse_mmap_area;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * What {@code VFIO_DEVICE_GET_REGION_INFO} reports for one region ({@code struct vfio_region_info} and its
 * capability chain, {@code <linux/vfio.h>}). vfio-user's {@code VFIO_USER_DEVICE_GET_REGION_INFO} reply has the
 * same layout, so {@link #parse} serves both.
 *
 * @param index        the region index, e.g. {@code VFIO_PCI_BAR0_REGION_INDEX}
 * @param flags        {@code VFIO_REGION_INFO_FLAG_*} (READ, WRITE, MMAP, CAPS)
 * @param size         bytes; 0 for a region the device does not implement
 * @param offset       where the region starts in the device file (for pread/pwrite and mmap), bytes
 * @param capabilities the capabilities of the chain that Panamax understands, in chain order
 */
public record VfioRegionInfo(int index, int flags, long size, long offset, List<Capability> capabilities) {

    /** A region capability ({@code VFIO_REGION_INFO_CAP_*}). */
    public sealed interface Capability permits SparseMmap, MsixMappable {
    }

    /** One area of a sparse mmap capability: {@code [offset, offset + size)} within the region, bytes. */
    public record Area(long offset, long size) {
    }

    /**
     * {@code VFIO_REGION_INFO_CAP_SPARSE_MMAP}: only these areas of the region may be mmapped (the MSI-X table's
     * pages usually are not).
     */
    public record SparseMmap(List<Area> areas) implements Capability {
        public SparseMmap {
            areas = List.copyOf(areas);
        }
    }

    /** {@code VFIO_REGION_INFO_CAP_MSIX_MAPPABLE}: the MSI-X table and PBA pages of this BAR may be mmapped too. */
    public record MsixMappable() implements Capability {
    }

    public VfioRegionInfo {
        capabilities = List.copyOf(capabilities);
    }

    /** @return true if the region can be read */
    public boolean readable() {
        return (flags & vfio_h.VFIO_REGION_INFO_FLAG_READ()) != 0;
    }

    /** @return true if the region can be written */
    public boolean writable() {
        return (flags & vfio_h.VFIO_REGION_INFO_FLAG_WRITE()) != 0;
    }

    /** @return true if the region (or, with {@link SparseMmap}, parts of it) can be mmapped */
    public boolean mmappable() {
        return (flags & vfio_h.VFIO_REGION_INFO_FLAG_MMAP()) != 0;
    }

    /** @return true if the MSI-X table and PBA pages may be mmapped ({@link MsixMappable} is present) */
    public boolean msixMappable() {
        return capabilities.stream().anyMatch(c -> c instanceof MsixMappable);
    }

    /**
     * @return the areas the region allows to mmap: the sparse mmap areas if the capability is present, else the
     * whole region if it is mmappable, else none
     */
    public List<Area> mmapAreas() {
        if (!mmappable() || size == 0) {
            return List.of();
        }
        for (Capability c : capabilities) {
            if (c instanceof SparseMmap s) {
                return s.areas();
            }
        }
        return List.of(new Area(0, size));
    }

    /**
     * Decodes a {@code struct vfio_region_info} followed by its capability chain, as the kernel fills it when
     * {@code argsz} was large enough. Each capability ends where the next one starts (the last one at the end of
     * {@code info}); unknown capabilities are skipped.
     *
     * @param info the whole buffer, {@code argsz} bytes
     * @throws IllegalArgumentException if the chain points outside the buffer, into the struct, backwards or into
     *         the capability itself, or a capability does not fit before the next one; if the region's offset or end
     *         is not a valid file offset ({@code off_t}: below 2^63, no wrap); or if a sparse mmap area does not lie
     *         inside the region (compared unsigned, without overflow)
     */
    public static VfioRegionInfo parse(MemorySegment info) {
        if (info.byteSize() < vfio_region_info.sizeof()) {
            throw new IllegalArgumentException("vfio_region_info of " + info.byteSize() + " bytes is shorter than "
                    + vfio_region_info.sizeof());
        }
        int index = vfio_region_info.index(info);
        int flags = vfio_region_info.flags(info);
        List<Capability> caps = new ArrayList<>();
        long at = (flags & vfio_h.VFIO_REGION_INFO_FLAG_CAPS()) != 0 ? Integer.toUnsignedLong(vfio_region_info.cap_offset(info)) : 0;
        while (at != 0) {
            String where = "region " + index + " capability at offset " + at;
            if (at < vfio_region_info.sizeof() || at + vfio_info_cap_header.sizeof() > info.byteSize()) {
                throw new IllegalArgumentException(where + " lies outside bytes " + vfio_region_info.sizeof() + ".."
                        + info.byteSize());
            }
            long next = Integer.toUnsignedLong(vfio_info_cap_header.next(info.asSlice(at)));
            if (next != 0 && (next < at + vfio_info_cap_header.sizeof() || next > info.byteSize())) {
                throw new IllegalArgumentException(where + " has next " + next + ", not after it within "
                        + info.byteSize() + " bytes");
            }
            MemorySegment cap = info.asSlice(at, (next != 0 ? next : info.byteSize()) - at);
            int id = Short.toUnsignedInt(vfio_info_cap_header.id(cap));
            if (id == vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP()) {
                if (cap.byteSize() < vfio_region_info_cap_sparse_mmap.sizeof()) {
                    throw new IllegalArgumentException(where + ": sparse mmap header is truncated");
                }
                long n = Integer.toUnsignedLong(vfio_region_info_cap_sparse_mmap.nr_areas(cap));
                if (vfio_region_info_cap_sparse_mmap.sizeof() + n * vfio_region_sparse_mmap_area.sizeof() > cap.byteSize()) {
                    throw new IllegalArgumentException(where + ": " + n + " sparse mmap areas do not fit in its "
                            + cap.byteSize() + " bytes");
                }
                List<Area> areas = new ArrayList<>();
                for (long i = 0; i < n; i++) {
                    MemorySegment a = vfio_region_info_cap_sparse_mmap.areas(cap, i);
                    areas.add(new Area(vfio_region_sparse_mmap_area.offset(a), vfio_region_sparse_mmap_area.size(a)));
                }
                caps.add(new SparseMmap(areas));
            } else if (id == vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE()) {
                caps.add(new MsixMappable());
            }
            at = next;
        }
        long size = vfio_region_info.size(info);
        long offset = vfio_region_info.offset(info);
        if (offset < 0 || size < 0 || offset > Long.MAX_VALUE - size) {
            throw new IllegalArgumentException(String.format("region %d at offset 0x%x of 0x%x bytes does not fit a file offset",
                    index, offset, size));
        }
        for (Capability c : caps) {
            if (c instanceof SparseMmap s) {
                for (Area a : s.areas()) {
                    if (!inside(a, size)) {
                        throw new IllegalArgumentException(String.format("sparse mmap area 0x%x+0x%x lies outside region %d of 0x%x bytes",
                                a.offset(), a.size(), index, size));
                    }
                }
            }
        }
        return new VfioRegionInfo(index, flags, size, offset, caps);
    }

    /** @return true when {@code [a.offset, a.offset + a.size)} lies inside {@code [0, size)}, all unsigned, without overflow */
    public static boolean inside(Area a, long size) {
        return Long.compareUnsigned(a.offset(), size) <= 0 && Long.compareUnsigned(a.size(), size - a.offset()) <= 0;
    }
}
