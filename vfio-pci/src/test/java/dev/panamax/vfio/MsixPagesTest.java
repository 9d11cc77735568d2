package dev.panamax.vfio;

import dev.panamax.vfio.VfioRegionInfo.Area;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class MsixPagesTest {
    @Test
    void tableAndPbaOnSeparatePagesMerge() {
        assertEquals(List.of(new Area(0x2000, 0x2000)), MsixPages.trapped(0x2000, 64, 0x3000, 4096));
    }

    @Test
    void tableAndPbaFarApart() {
        assertEquals(List.of(new Area(0x0, 0x1000), new Area(0x8000, 0x1000)), MsixPages.trapped(0, 16, 0x8800, 4096));
    }

    @Test
    void tableCrossingAPageTrapsBoth() {
        // 2048 vectors = 32 KiB from 0x800: pages 0x0..0x9000; PBA 256 bytes right after, same last page.
        assertEquals(List.of(new Area(0, 0x9000)), MsixPages.trapped(0x800, 2048, 0x8800, 4096));
    }

    @Test
    void pbaElsewhereOnlyTrapsTheTable() {
        assertEquals(List.of(new Area(0x1000, 0x1000)), MsixPages.trapped(0x1000, 1, -1, 4096));
        assertThrows(IllegalArgumentException.class, () -> MsixPages.trapped(0, 1, 0, 3000));
    }

    @Test
    void mappableIsAllowedMinusTrapped() {
        List<Area> trapped = List.of(new Area(0x2000, 0x1000), new Area(0x6000, 0x1000));
        assertEquals(List.of(new Area(0, 0x2000), new Area(0x3000, 0x3000), new Area(0x7000, 0x1000)),
                MsixPages.mappable(List.of(new Area(0, 0x8000)), trapped));
        // Sparse areas from the kernel that already leave the table out stay as they are.
        assertEquals(List.of(new Area(0, 0x2000), new Area(0x3000, 0x1000)),
                MsixPages.mappable(List.of(new Area(0, 0x2000), new Area(0x3000, 0x1000)), trapped));
        // Nothing allowed, nothing mappable; an area wholly trapped vanishes.
        assertEquals(List.of(), MsixPages.mappable(List.of(), trapped));
        assertEquals(List.of(), MsixPages.mappable(List.of(new Area(0x2000, 0x1000)), trapped));
    }
}
