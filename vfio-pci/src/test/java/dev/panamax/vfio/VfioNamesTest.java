package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class VfioNamesTest {
    @Test
    void regionAndIrqIndicesAsVfioHNamesThem() {
        String[] regions = {"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "CONFIG", "VGA"};
        for (int i = 0; i < regions.length; i++) {
            assertEquals(regions[i], VfioNames.region(i));
        }
        assertEquals("region 9", VfioNames.region(9));
        String[] irqs = {"INTX", "MSI", "MSIX", "ERR", "REQ"};
        for (int i = 0; i < irqs.length; i++) {
            assertEquals(irqs[i], VfioNames.irq(i));
        }
        assertEquals("irq index 5", VfioNames.irq(5));
    }

    @Test
    void setIrqsInOneLine() {
        assertEquals("MSIX vectors 0+3 ACTION_TRIGGER DATA_EVENTFD [17, 18, -1]",
                VfioNames.irqSet(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 17, 18, -1)));
        assertEquals("INTX vectors 0+1 ACTION_UNMASK DATA_NONE",
                VfioNames.irqSet(VfioIrqSet.none(VfioIrqSet.Action.UNMASK, vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1)));
        assertEquals("INTX vectors 0+1 ACTION_MASK DATA_BOOL [true]",
                VfioNames.irqSet(new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_BOOL() | vfio_h.VFIO_IRQ_SET_ACTION_MASK(),
                        vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1, new int[0], new boolean[]{true})));
        assertEquals("MSI disable (ACTION_TRIGGER DATA_NONE count 0)",
                VfioNames.irqSet(VfioIrqSet.disable(vfio_h.VFIO_PCI_MSI_IRQ_INDEX())));
    }

    @Test
    void regionAndIrqInfo() {
        int rwm = vfio_h.VFIO_REGION_INFO_FLAG_READ() | vfio_h.VFIO_REGION_INFO_FLAG_WRITE() | vfio_h.VFIO_REGION_INFO_FLAG_MMAP();
        assertEquals("BAR0 size 0x4000 offset 0x0 flags READ|WRITE|MMAP mmap [0x0+0x4000]",
                VfioNames.regionInfo(new VfioRegionInfo(0, rwm, 0x4000, 0, List.of())));
        assertEquals("BAR2 size 0x4000 offset 0x20000000000 flags READ|WRITE|MMAP|CAPS mmap [0x0+0x1000, 0x3000+0x1000] msix-mappable",
                VfioNames.regionInfo(new VfioRegionInfo(2, rwm | vfio_h.VFIO_REGION_INFO_FLAG_CAPS(), 0x4000, 0x200_0000_0000L,
                        List.of(new VfioRegionInfo.SparseMmap(List.of(new VfioRegionInfo.Area(0, 0x1000),
                                new VfioRegionInfo.Area(0x3000, 0x1000))), new VfioRegionInfo.MsixMappable()))));
        assertEquals("CONFIG size 0x100 offset 0x0 flags 0", VfioNames.regionInfo(new VfioRegionInfo(7, 0, 0x100, 0, List.of())));
        assertEquals("MSIX count 64 flags 0x9", VfioNames.irqInfo(new VfioIrqInfo(2, 9, 64)));
    }
}
