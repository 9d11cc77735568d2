package dev.panamax.vmm;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.core.memory.X86Layout;
import dev.panamax.pci.PciBarAllocator;
import org.junit.jupiter.api.Test;

/** The PCI windows the machine places BARs in (and hands to the firmware's host bridge description). */
class MachineWindowsTest {
    private static final long GIB = 1L << 30;

    @Test
    void windowsFollowRamAndTheGuestsAddressWidth() {
        PciBarAllocator.Windows w = PcFirmware.barAllocator(512L << 20, 46).windows();
        assertEquals(X86Layout.PCI_MMIO32_START, w.mmio32Start());
        assertEquals(X86Layout.PCI_MMIO32_END, w.mmio32End());
        assertEquals(4 * GIB, w.mmio64Start());
        assertEquals(1L << 40, w.mmio64End());
        w = PcFirmware.barAllocator(8 * GIB, 39).windows();
        assertEquals(9 * GIB, w.mmio64Start(), "3 GiB below the hole, 5 GiB from 4 GiB: RAM ends at 9 GiB");
        assertEquals(1L << 39, w.mmio64End());
    }

    @Test
    void ramUpToTheEndOfTheAddressSpaceLeavesAnEmptyWindow() {
        PciBarAllocator.Windows w = PcFirmware.barAllocator(70 * GIB, 36).windows();
        assertEquals(w.mmio64Start(), w.mmio64End());
    }
}
