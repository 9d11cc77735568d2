package dev.panamax.vfio;

import dev.panamax.vfio.VfioIrqSet.Action;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HexFormat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@code struct vfio_irq_set} requests: flags, validation, and the bytes the kernel receives. */
class VfioIrqSetTest {
    @Test
    void eventfdTriggerEncodesAsVfioH() {
        VfioIrqSet set = VfioIrqSet.eventfds(Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 1, 7, -1);
        assertEquals(vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), set.flags());
        assertEquals(0x24, set.flags());
        assertEquals(8, set.dataBytes());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(20 + 8);
            KernelVfioDevice.encode(set, s);
            // argsz 28, flags 0x24, index 2, start 1, count 2, fds 7 and -1; all little-endian.
            assertEquals("1c000000" + "24000000" + "02000000" + "01000000" + "02000000" + "07000000" + "ffffffff",
                    HexFormat.of().formatHex(s.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
        }
    }

    @Test
    void noneAndDisable() {
        VfioIrqSet unmask = VfioIrqSet.none(Action.UNMASK, vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1);
        assertEquals(0x11, unmask.flags());
        assertEquals(0, unmask.dataBytes());
        VfioIrqSet off = VfioIrqSet.disable(vfio_h.VFIO_PCI_MSI_IRQ_INDEX());
        assertEquals(0x21, off.flags());
        assertEquals(0, off.count());
        assertEquals(0x09, VfioIrqSet.none(Action.MASK, 0, 0, 1).flags());
    }

    @Test
    void boolDataIsOneBytePerVector() {
        VfioIrqSet set = new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_BOOL() | vfio_h.VFIO_IRQ_SET_ACTION_MASK(), 0, 1, 3,
                new int[0], new boolean[] {true, false, true});
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(20 + set.dataBytes());
            KernelVfioDevice.encode(set, s);
            assertEquals("010001", HexFormat.of().formatHex(s.asSlice(20).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
        }
    }

    @Test
    void mismatchedDataIsRejected() {
        int eventfd = vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
        assertThrows(IllegalArgumentException.class, () -> new VfioIrqSet(eventfd, 0, 0, 2, new int[] {3}, new boolean[0]));
        assertThrows(IllegalArgumentException.class, () -> new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_NONE() | vfio_h.VFIO_IRQ_SET_DATA_BOOL(),
                0, 0, 0, new int[0], new boolean[0]));
        assertThrows(IllegalArgumentException.class, () -> new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_NONE(), 0, 0, 1,
                new int[] {4}, new boolean[0]));
    }
}
