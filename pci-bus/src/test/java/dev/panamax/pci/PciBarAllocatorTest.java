package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class PciBarAllocatorTest {
    @Test
    void eachKindGoesToItsWindowAligned() {
        var a = new PciBarAllocator(0x2_0000_0000L);
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
        var a = new PciBarAllocator(0xC000_0000L, 0xC000_2000L, 1L << 32);
        a.allocate(PciBar.memory32(0x1000));
        a.allocate(PciBar.memory32(0x1000));
        assertThrows(IllegalStateException.class, () -> a.allocate(PciBar.memory32(0x10)));
        var b = new PciBarAllocator(1L << 32);
        for (int i = 0; i < 0x40; i++) {
            b.allocate(PciBar.io(0x100));
        }
        assertThrows(IllegalStateException.class, () -> b.allocate(PciBar.io(4)));
        // The default 32-bit window ends at the IOAPIC.
        var c = new PciBarAllocator(1L << 32);
        c.allocate(PciBar.memory32(1L << 29));
        c.allocate(PciBar.memory32(1L << 28));
        assertThrows(IllegalStateException.class, () -> c.allocate(PciBar.memory32(1L << 28)));
    }

    @Test
    void assignProgramsEveryBarLargestFirst() {
        var f = new PciFunction("f", new PciConfigSpace(PciConfigSpace.SIZE));
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, PciBar.memory32(0x10_0000), null);
        f.setBar(2, PciBar.memory64(0x10_0000, true), null);
        f.setBar(4, PciBar.io(0x40), null);
        new PciBarAllocator(0x1_8000_0000L).assign(f);
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
