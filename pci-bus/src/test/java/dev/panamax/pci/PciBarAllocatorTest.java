package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.memory.X86Layout;
import org.junit.jupiter.api.Test;

class PciBarAllocatorTest {
    private static final long GIB = 1L << 30;
    private static final long TIB = 1L << 40;

    @Test
    void eachKindGoesToItsWindowAligned() {
        var a = new PciBarAllocator(0x2_0000_0000L, TIB);
        assertEquals(0xC000_0000L, a.allocate(PciBar.memory32(0x1000)));
        assertEquals(0xC010_0000L, a.allocate(PciBar.memory32(0x10_0000)));
        assertEquals(0xC020_0000L, a.allocate(PciBar.memory32(0x100)));
        assertEquals(0x2_0000_0000L, a.allocate(PciBar.memory64(0x4000, true)));
        assertEquals(0x4_0000_0000L, a.allocate(PciBar.memory64(0x2_0000_0000L, true)));
        assertEquals(0xC000, a.allocate(PciBar.io(0x20)));
        assertEquals(0xC100, a.allocate(PciBar.io(0x100)));
        assertEquals(0xC200, a.allocate(PciBar.io(4)));
    }

    @Test
    void fullWindowsThrow() {
        var a = new PciBarAllocator(0xC000_0000L, 0xC000_2000L, 1L << 32, TIB);
        a.allocate(PciBar.memory32(0x1000));
        a.allocate(PciBar.memory32(0x1000));
        assertThrows(IllegalStateException.class, () -> a.allocate(PciBar.memory32(0x10)));
        var b = new PciBarAllocator(1L << 32, TIB);
        for (int i = 0; i < 0x40; i++) {
            b.allocate(PciBar.io(0x100));
        }
        assertThrows(IllegalStateException.class, () -> b.allocate(PciBar.io(4)));
        // The default 32-bit window ends where the ECAM window starts: 512 MiB.
        var c = new PciBarAllocator(1L << 32, TIB);
        c.allocate(PciBar.memory32(1L << 28));
        c.allocate(PciBar.memory32(1L << 27));
        c.allocate(PciBar.memory32(1L << 27));
        String m = assertThrows(IllegalStateException.class, () -> c.allocate(PciBar.memory32(0x1000))).getMessage();
        assertTrue(m.contains("32-bit MMIO window [0xc0000000, 0xe0000000)"), m);
    }

    @Test
    void the32BitWindowIsTheLayouts() {
        var w = new PciBarAllocator(4 * GIB, TIB).windows();
        assertEquals(new PciBarAllocator.Windows(0xC000, 0x10000, X86Layout.PCI_MMIO32_START, X86Layout.PCI_MMIO32_END,
                4 * GIB, TIB), w);
    }

    @Test
    void a64GiBBarFitsAboveRamAlignedToItsSize() {
        // 3 GiB low + 61 GiB high: RAM ends at 65 GiB; the window starts at the next GiB.
        long start = X86Layout.pciMmio64Start(64 * GIB);
        assertEquals(65 * GIB, start);
        var a = new PciBarAllocator(start, X86Layout.pciMmio64End(46));
        var gpu = new PciFunction("gpu", new PciConfigSpace(PciConfigSpace.EXTENDED_SIZE));
        gpu.setBar(0, PciBar.memory64(16L << 20, false), null);
        gpu.setBar(2, PciBar.memory64(64 * GIB, true), null);
        a.assign(gpu);
        assertEquals(128 * GIB, gpu.barAddress(2), "first 64 GiB boundary at or above 65 GiB");
        assertEquals(192 * GIB, gpu.barAddress(0), "the small one after the large one");
        assertEquals((int) (128 * GIB >>> 32), gpu.configRead(PciConfigSpace.BASE_ADDRESS_0 + 12, 4));
    }

    @Test
    void a2TiBBarIsRefusedNamingTheDeviceTheBarAndItsSize() {
        var a = new PciBarAllocator(X86Layout.pciMmio64Start(8 * GIB), X86Layout.pciMmio64End(46));
        var gpu = new PciFunction("gpu0", new PciConfigSpace(PciConfigSpace.EXTENDED_SIZE));
        gpu.setBar(2, PciBar.memory64(2 * TIB, true), null);
        String m = assertThrows(IllegalStateException.class, () -> a.assign(gpu)).getMessage();
        assertTrue(m.startsWith("PCI device gpu0: BAR 2 (64-bit memory, prefetchable, 2 TiB) does not fit"), m);
        assertTrue(m.contains("64-bit MMIO window [0x240000000, 0x10000000000)"), m);
    }

    @Test
    void aBarThatWouldPassTheEndOfASmallAddressWidthIsRefused() {
        // A 39-bit guest: the window ends at 512 GiB.
        var a = new PciBarAllocator(8 * GIB, X86Layout.pciMmio64End(39));
        assertEquals(128 * GIB, a.allocate(PciBar.memory64(128 * GIB, true)));
        assertThrows(IllegalStateException.class, () -> a.allocate(PciBar.memory64(512 * GIB, true)));
        assertEquals(256 * GIB, a.allocate(PciBar.memory64(128 * GIB, true)), "the refused BAR took no room");
        assertEquals(384 * GIB, a.allocate(PciBar.memory64(128 * GIB, true)), "ends exactly at the window's end");
        assertThrows(IllegalStateException.class, () -> a.allocate(PciBar.memory64(16, false)));
        // Sizes near 2^62 do not overflow the arithmetic.
        assertThrows(IllegalStateException.class, () -> a.allocate(PciBar.memory64(1L << 62, true)));
        var top = new PciBarAllocator(0xC000_0000L, 0xE000_0000L, (1L << 62) + (1L << 61), Long.MAX_VALUE);
        assertThrows(IllegalStateException.class, () -> top.allocate(PciBar.memory64(1L << 62, true)));
    }

    @Test
    void manyBarsPackAlignedWithoutOverlap() {
        long start = X86Layout.pciMmio64Start(4 * GIB);
        var a = new PciBarAllocator(start, TIB);
        long[] sizes = {GIB, 16L << 10, 32 * GIB, 1L << 20, 4 * GIB, 64L << 10, 256L << 20, 8 * GIB};
        long previousEnd = start;
        for (long size : sizes) {
            long at = a.allocate(PciBar.memory64(size, true));
            assertEquals(0, at % size, "aligned to its size: 0x" + Long.toHexString(at));
            assertTrue(at >= previousEnd, "after the previous one");
            assertTrue(at + size <= TIB);
            previousEnd = at + size;
        }
    }

    @Test
    void windowsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> new PciBarAllocator(TIB, 4 * GIB));
        assertThrows(IllegalArgumentException.class, () -> new PciBarAllocator(0xC000_0000L, 0x1_0000_1000L, 4 * GIB, TIB));
    }

    @Test
    void sizesAreNamedInBinaryUnits() {
        assertEquals("2 TiB", PciBarAllocator.bytes(2 * TIB));
        assertEquals("64 GiB", PciBarAllocator.bytes(64 * GIB));
        assertEquals("16 KiB", PciBarAllocator.bytes(16 << 10));
        assertEquals("32 bytes", PciBarAllocator.bytes(32));
    }

    @Test
    void assignProgramsEveryBarLargestFirst() {
        var f = new PciFunction("f", new PciConfigSpace(PciConfigSpace.SIZE));
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, PciBar.memory32(0x10_0000), null);
        f.setBar(2, PciBar.memory64(0x10_0000, true), null);
        f.setBar(4, PciBar.io(0x40), null);
        new PciBarAllocator(0x1_8000_0000L, TIB).assign(f);
        assertEquals(0xC010_0000L, f.barAddress(0));
        assertEquals(0xC000_0000L, f.barAddress(1));
        assertEquals(0x1_8000_0000L, f.barAddress(2));
        assertEquals(0xC000, f.barAddress(4));
        assertEquals(0xC0100000, f.configRead(PciConfigSpace.BASE_ADDRESS_0, 4));
        assertEquals(0x8000000C, f.configRead(PciConfigSpace.BASE_ADDRESS_0 + 8, 4));
        assertEquals(1, f.configRead(PciConfigSpace.BASE_ADDRESS_0 + 12, 4));
        assertEquals(0xC001, f.configRead(PciConfigSpace.BASE_ADDRESS_0 + 16, 4));
    }
}
