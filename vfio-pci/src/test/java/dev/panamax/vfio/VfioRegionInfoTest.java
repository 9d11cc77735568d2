package dev.panamax.vfio;

import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.VfioRegionInfo.MsixMappable;
import dev.panamax.vfio.VfioRegionInfo.SparseMmap;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Decoding {@code struct vfio_region_info} and its capability chain from bytes laid out as vfio.h says. */
class VfioRegionInfoTest {
    static final int READ = 1, WRITE = 2, MMAP = 4, CAPS = 8;

    /** A region info of {@code argsz} bytes with the fixed fields at their vfio.h offsets. */
    static MemorySegment info(Arena arena, long argsz, int flags, int index, int capOffset, long size, long offset) {
        MemorySegment s = arena.allocate(argsz, 8);
        s.set(JAVA_INT, 0, (int) argsz);
        s.set(JAVA_INT, 4, flags);
        s.set(JAVA_INT, 8, index);
        s.set(JAVA_INT, 12, capOffset);
        s.set(JAVA_LONG, 16, size);
        s.set(JAVA_LONG, 24, offset);
        return s;
    }

    static void capHeader(MemorySegment s, long at, int id, int version, int next) {
        s.set(JAVA_SHORT, at, (short) id);
        s.set(JAVA_SHORT, at + 2, (short) version);
        s.set(JAVA_INT, at + 4, next);
    }

    @Test
    void fixedFieldsWithoutCapabilities() {
        try (Arena arena = Arena.ofConfined()) {
            VfioRegionInfo r = VfioRegionInfo.parse(info(arena, 32, READ | WRITE | MMAP, 2, 0, 0x4000, 0x20000000000L));
            assertEquals(2, r.index());
            assertEquals(0x4000, r.size());
            assertEquals(0x20000000000L, r.offset());
            assertTrue(r.readable() && r.writable() && r.mmappable());
            assertFalse(r.msixMappable());
            assertEquals(List.of(new Area(0, 0x4000)), r.mmapAreas());
        }
    }

    @Test
    void sparseMmapThenMsixMappableChain() {
        try (Arena arena = Arena.ofConfined()) {
            // info (32) | sparse mmap header (16) + 2 areas (32) | msix mappable header (8)
            MemorySegment s = info(arena, 88, READ | WRITE | MMAP | CAPS, 0, 32, 0x10000, 0);
            capHeader(s, 32, vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), 1, 80);
            s.set(JAVA_INT, 40, 2);
            s.set(JAVA_LONG, 48, 0);
            s.set(JAVA_LONG, 56, 0x3000);
            s.set(JAVA_LONG, 64, 0x4000);
            s.set(JAVA_LONG, 72, 0xc000);
            capHeader(s, 80, vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE(), 1, 0);
            VfioRegionInfo r = VfioRegionInfo.parse(s);
            assertEquals(List.of(new SparseMmap(List.of(new Area(0, 0x3000), new Area(0x4000, 0xc000))), new MsixMappable()),
                    r.capabilities());
            assertEquals(List.of(new Area(0, 0x3000), new Area(0x4000, 0xc000)), r.mmapAreas());
            assertTrue(r.msixMappable());
        }
    }

    /**
     * Sparse mmap areas must lie inside their region, and the region inside a 63-bit file offset space, all
     * compared without overflow (issue 15, defect 3): an area past the region's end, one whose end wraps 2^64, a
     * region whose offset is "negative" (at or above 2^63) or whose end wraps.
     */
    @Test
    void areasOutsideTheRegionAndOffsetsThatWrapAreRejected() {
        long[][] badAreas = {{0x8000, 0x10000}, {0x10000, 0x1000}, {0xFFFF_FFFF_FFFF_F000L, 0x2000}, {0x1000, -0x1000L}};
        try (Arena arena = Arena.ofConfined()) {
            for (long[] a : badAreas) {
                MemorySegment s = info(arena, 64, READ | MMAP | CAPS, 2, 32, 0x10000, 0);
                capHeader(s, 32, vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), 1, 0);
                s.set(JAVA_INT, 40, 1);
                s.set(JAVA_LONG, 48, a[0]);
                s.set(JAVA_LONG, 56, a[1]);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(s),
                        Long.toHexString(a[0]) + "+" + Long.toHexString(a[1]));
                assertTrue(e.getMessage().contains("outside region 2"), e.getMessage());
            }
            for (long offset : new long[]{0x8000_0000_0000_0000L, 0x7FFF_FFFF_FFFF_F000L}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> VfioRegionInfo.parse(info(arena, 32, READ | MMAP, 2, 0, 0x10000, offset)));
                assertTrue(e.getMessage().contains("offset"), e.getMessage());
            }
            // The last area ending exactly at the region's end is fine.
            MemorySegment s = info(arena, 64, READ | MMAP | CAPS, 2, 32, 0x10000, 0x7FFF_FFFF_FFFE_0000L);
            capHeader(s, 32, vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), 1, 0);
            s.set(JAVA_INT, 40, 1);
            s.set(JAVA_LONG, 48, 0xF000);
            s.set(JAVA_LONG, 56, 0x1000);
            assertEquals(List.of(new Area(0xF000, 0x1000)), VfioRegionInfo.parse(s).mmapAreas());
        }
    }

    @Test
    void capsFlagClearMeansNoChainAndNoMmapMeansNoAreas() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = info(arena, 40, READ, 7, 32, 0x100, 0x70000000000L);
            capHeader(s, 32, vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE(), 1, 0);
            VfioRegionInfo r = VfioRegionInfo.parse(s);
            assertEquals(List.of(), r.capabilities());
            assertEquals(List.of(), r.mmapAreas());
        }
    }

    @Test
    void unknownCapabilitiesAreSkipped() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = info(arena, 56, READ | CAPS, 0, 32, 0x100, 0);
            capHeader(s, 32, vfio_h.VFIO_REGION_INFO_CAP_TYPE(), 1, 48);
            capHeader(s, 48, vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE(), 1, 0);
            assertEquals(List.of(new MsixMappable()), VfioRegionInfo.parse(s).capabilities());
        }
    }

    @Test
    void brokenChainsAreRejectedWithTheirOffset() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment outside = info(arena, 40, CAPS, 0, 36, 0x100, 0);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(outside)).getMessage()
                    .contains("offset 36"));
            MemorySegment loop = info(arena, 48, CAPS, 0, 32, 0x100, 0);
            capHeader(loop, 32, 99, 1, 32);
            assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(loop));
            MemorySegment tooMany = info(arena, 56, CAPS | MMAP, 0, 32, 0x100, 0);
            capHeader(tooMany, 32, vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), 1, 0);
            tooMany.set(JAVA_INT, 40, 2);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(tooMany)).getMessage()
                    .contains("2 sparse mmap areas do not fit"));
            assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(arena.allocate(16)));
            // The areas would fit in the buffer, but not before the next capability: each ends where the next starts.
            MemorySegment overlap = info(arena, 80, CAPS | MMAP, 0, 32, 0x100, 0);
            capHeader(overlap, 32, vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), 1, 64);
            overlap.set(JAVA_INT, 40, 2);
            capHeader(overlap, 64, vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE(), 1, 0);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(overlap)).getMessage()
                    .contains("2 sparse mmap areas do not fit"));
            MemorySegment intoItself = info(arena, 48, CAPS, 0, 32, 0x100, 0);
            capHeader(intoItself, 32, 99, 1, 36);
            assertThrows(IllegalArgumentException.class, () -> VfioRegionInfo.parse(intoItself));
        }
    }
}
