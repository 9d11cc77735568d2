package dev.panamax.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.memory.X86Layout;
import org.junit.jupiter.api.Test;

/** The PCI windows and the ECAM window of {@link X86Layout}. */
class X86LayoutTest {
    private static final long GIB = 1L << 30;

    @Test
    void ecamIsSizeAlignedAndFollowsThe32BitWindowBelowTheIoapic() {
        assertEquals(0xE000_0000L, X86Layout.ECAM_BASE);
        assertEquals(256L << 20, X86Layout.ECAM_SIZE);
        assertEquals(0, X86Layout.ECAM_BASE % X86Layout.ECAM_SIZE, "bus bits 27..20 decode from the address");
        assertEquals((X86Layout.ECAM_END_BUS - X86Layout.ECAM_START_BUS + 1) * 32L * 8 * 4096, X86Layout.ECAM_SIZE);
        assertEquals(X86Layout.PCI_HOLE_START, X86Layout.PCI_MMIO32_START);
        assertEquals(X86Layout.ECAM_BASE, X86Layout.PCI_MMIO32_END);
        assertTrue(X86Layout.ECAM_BASE + X86Layout.ECAM_SIZE <= X86Layout.IOAPIC_BASE);
    }

    @Test
    void the64BitWindowStartsAbove4GiBAndRamOnA1GiBBoundary() {
        assertEquals(4 * GIB, X86Layout.pciMmio64Start(512L << 20), "small guest: right at 4 GiB");
        assertEquals(4 * GIB, X86Layout.pciMmio64Start(3 * GIB), "RAM that ends at the hole");
        assertEquals(5 * GIB, X86Layout.pciMmio64Start(3 * GIB + 1), "one byte above 4 GiB takes the whole GiB");
        assertEquals(6 * GIB, X86Layout.pciMmio64Start(5 * GIB), "3 GiB low + 2 GiB high");
        assertEquals(7 * GIB, X86Layout.pciMmio64Start(5 * GIB + (256L << 20)));
    }

    @Test
    void the64BitWindowEndsAt1TiBOrTheGuestsPhysicalAddressWidth() {
        assertEquals(1L << 40, X86Layout.PCI_MMIO64_LIMIT);
        assertEquals(1L << 40, X86Layout.pciMmio64End(46));
        assertEquals(1L << 40, X86Layout.pciMmio64End(40));
        assertEquals(1L << 39, X86Layout.pciMmio64End(39));
        assertEquals(1L << 36, X86Layout.pciMmio64End(X86Layout.DEFAULT_PHYSICAL_ADDRESS_BITS));
        assertThrows(IllegalArgumentException.class, () -> X86Layout.pciMmio64End(31));
        assertThrows(IllegalArgumentException.class, () -> X86Layout.pciMmio64End(53));
    }
}
