package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;

import java.util.Arrays;
import java.util.StringJoiner;

/**
 * VFIO requests and answers in {@code linux/vfio.h}'s words, one line each, for {@code --trace} (logger
 * {@code dev.panamax.trace.vfio}); shared by the kernel VFIO device and the vfio-user client, whose messages
 * carry the same structs.
 */
public final class VfioNames {
    private VfioNames() {
    }

    /** @return "BAR0".."BAR5", "ROM", "CONFIG", "VGA" for a {@code VFIO_PCI_*_REGION_INDEX}, else "region N" */
    public static String region(int index) {
        if (index >= vfio_h.VFIO_PCI_BAR0_REGION_INDEX() && index <= vfio_h.VFIO_PCI_BAR5_REGION_INDEX()) {
            return "BAR" + (index - vfio_h.VFIO_PCI_BAR0_REGION_INDEX());
        }
        if (index == vfio_h.VFIO_PCI_ROM_REGION_INDEX()) return "ROM";
        if (index == vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()) return "CONFIG";
        if (index == vfio_h.VFIO_PCI_VGA_REGION_INDEX()) return "VGA";
        return "region " + index;
    }

    /** @return "INTX", "MSI", "MSIX", "ERR", "REQ" for a {@code VFIO_PCI_*_IRQ_INDEX}, else "irq index N" */
    public static String irq(int index) {
        if (index == vfio_h.VFIO_PCI_INTX_IRQ_INDEX()) return "INTX";
        if (index == vfio_h.VFIO_PCI_MSI_IRQ_INDEX()) return "MSI";
        if (index == vfio_h.VFIO_PCI_MSIX_IRQ_INDEX()) return "MSIX";
        if (index == vfio_h.VFIO_PCI_ERR_IRQ_INDEX()) return "ERR";
        if (index == vfio_h.VFIO_PCI_REQ_IRQ_INDEX()) return "REQ";
        return "irq index " + index;
    }

    /**
     * @return e.g. "MSIX vectors 0+2 ACTION_TRIGGER DATA_EVENTFD [17, 18]", "INTX vectors 0+1 ACTION_UNMASK
     *         DATA_NONE", or "MSI disable (ACTION_TRIGGER DATA_NONE count 0)"
     */
    public static String irqSet(VfioIrqSet s) {
        String data = (s.flags() & vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()) != 0 ? " " + Arrays.toString(s.eventfds())
                : (s.flags() & vfio_h.VFIO_IRQ_SET_DATA_BOOL()) != 0 ? " " + Arrays.toString(s.bools()) : "";
        return irqSet(s.flags(), s.index(), s.start(), s.count()) + data;
    }

    /**
     * The header of a {@code struct vfio_irq_set} in words, without its data.
     *
     * @return e.g. "MSIX vectors 0+2 ACTION_TRIGGER DATA_EVENTFD", or "MSI disable (ACTION_TRIGGER DATA_NONE count 0)"
     */
    public static String irqSet(int flags, int index, int start, int count) {
        String action = (flags & vfio_h.VFIO_IRQ_SET_ACTION_MASK()) != 0 ? "ACTION_MASK"
                : (flags & vfio_h.VFIO_IRQ_SET_ACTION_UNMASK()) != 0 ? "ACTION_UNMASK"
                : (flags & vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER()) != 0 ? "ACTION_TRIGGER" : "no action";
        String data = (flags & vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()) != 0 ? "DATA_EVENTFD"
                : (flags & vfio_h.VFIO_IRQ_SET_DATA_BOOL()) != 0 ? "DATA_BOOL" : "DATA_NONE";
        if (count == 0 && action.equals("ACTION_TRIGGER") && data.equals("DATA_NONE")) {
            return irq(index) + " disable (ACTION_TRIGGER DATA_NONE count 0)";
        }
        return String.format("%s vectors %d+%d %s %s", irq(index), start, count, action, data);
    }

    /** @return e.g. "BAR0 size 0x4000 offset 0x0 flags READ|WRITE|MMAP mmap [0x0+0x4000]" */
    public static String regionInfo(VfioRegionInfo r) {
        StringJoiner flags = new StringJoiner("|");
        if ((r.flags() & vfio_h.VFIO_REGION_INFO_FLAG_READ()) != 0) flags.add("READ");
        if ((r.flags() & vfio_h.VFIO_REGION_INFO_FLAG_WRITE()) != 0) flags.add("WRITE");
        if ((r.flags() & vfio_h.VFIO_REGION_INFO_FLAG_MMAP()) != 0) flags.add("MMAP");
        if ((r.flags() & vfio_h.VFIO_REGION_INFO_FLAG_CAPS()) != 0) flags.add("CAPS");
        StringJoiner areas = new StringJoiner(", ", " mmap [", "]");
        areas.setEmptyValue("");
        for (VfioRegionInfo.Area a : r.mmapAreas()) {
            areas.add(String.format("0x%x+0x%x", a.offset(), a.size()));
        }
        return String.format("%s size 0x%x offset 0x%x flags %s%s%s", region(r.index()), r.size(), r.offset(),
                flags.length() == 0 ? "0" : flags, areas, r.msixMappable() ? " msix-mappable" : "");
    }

    /** @return e.g. "MSIX count 64 flags 0x9" */
    public static String irqInfo(VfioIrqInfo i) {
        return String.format("%s count %d flags 0x%x", irq(i.index()), i.count(), i.flags());
    }
}
