package dev.panamax.vfiouser.server;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Configuration space bytes and write masks, without a socket. */
class PciConfigSpaceTest {
    private static long read(PciConfigSpace c, int offset, int width) {
        byte[] b = new byte[width];
        c.read(offset, b);
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    private static void write(PciConfigSpace c, int offset, int width, long value) {
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        c.write(offset, b);
    }

    @Test
    void headerFields() {
        PciConfigSpace c = new PciConfigSpace(0x1af4, 0x1042, 0x010000, 1);
        c.setSubsystem(0x1af4, 0x0002);
        c.setInterruptPin(1);
        assertEquals(0x10421af4L, read(c, 0, 4));
        assertEquals(0x01000001L, read(c, PciConfigSpace.REVISION_ID, 4));
        assertEquals(0x00021af4L, read(c, PciConfigSpace.SUBSYSTEM_VENDOR_ID, 4));
        assertEquals(1, read(c, PciConfigSpace.INTERRUPT_PIN, 1));
        assertEquals(0, read(c, PciConfigSpace.CAPABILITIES_POINTER, 1));
        assertEquals(0, read(c, PciConfigSpace.STATUS, 2) & PciConfigSpace.STATUS_CAPABILITIES_LIST);
        // Read-only except what the mask allows.
        write(c, PciConfigSpace.INTERRUPT_PIN, 1, 4);
        assertEquals(1, read(c, PciConfigSpace.INTERRUPT_PIN, 1));
        write(c, PciConfigSpace.INTERRUPT_LINE, 1, 11);
        assertEquals(11, read(c, PciConfigSpace.INTERRUPT_LINE, 1));
    }

    @Test
    void barSizing() {
        PciConfigSpace c = new PciConfigSpace(1, 2, 3, 4);
        c.setBar(1, 256, PciConfigSpace.BAR_IO);
        write(c, PciConfigSpace.BAR0 + 4, 4, 0xFFFFFFFFL);
        assertEquals(0xFFFFFF01L, read(c, PciConfigSpace.BAR0 + 4, 4));
        write(c, PciConfigSpace.BAR0 + 4, 4, 0xC000);
        assertEquals(0xC001L, read(c, PciConfigSpace.BAR0 + 4, 4));
        c.setBar(2, 1L << 33, PciConfigSpace.BAR_MEM64);
        write(c, PciConfigSpace.BAR0 + 8, 4, 0xFFFFFFFFL);
        write(c, PciConfigSpace.BAR0 + 12, 4, 0xFFFFFFFFL);
        assertEquals(0x4L, read(c, PciConfigSpace.BAR0 + 8, 4));
        assertEquals(0xFFFFFFFEL, read(c, PciConfigSpace.BAR0 + 12, 4));
        assertThrows(IllegalArgumentException.class, () -> c.setBar(0, 100, 0));
        assertThrows(IllegalArgumentException.class, () -> c.setBar(5, 4096, PciConfigSpace.BAR_MEM64));
    }

    @Test
    void capabilityList() {
        PciConfigSpace c = new PciConfigSpace(1, 2, 3, 4);
        int msix = c.addCapability(0x11, new byte[]{0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}, new byte[]{0, (byte) 0xC0, 0, 0, 0, 0, 0, 0, 0, 0});
        int vendor = c.addCapability(0x09, new byte[]{4, 0x55}, new byte[2]);
        assertEquals(0x40, msix);
        assertEquals(0x4C, vendor);
        assertEquals(msix, read(c, PciConfigSpace.CAPABILITIES_POINTER, 1));
        assertEquals(0x11 | (vendor << 8), read(c, msix, 2));
        assertEquals(0x09, read(c, vendor, 2));
        assertNotEquals(0, read(c, PciConfigSpace.STATUS, 2) & PciConfigSpace.STATUS_CAPABILITIES_LIST);
        // MSI-X Message Control: only enable and function mask are writable.
        write(c, msix + 2, 2, 0xFFFF);
        assertEquals(0xC003L, read(c, msix + 2, 2));
        assertThrows(IllegalArgumentException.class, () -> c.addCapability(0x10, new byte[250], new byte[250]));
    }

    @Test
    void accessHookRunsAroundAccessesThatTouchItsRange() {
        PciConfigSpace c = new PciConfigSpace(1, 2, 3, 4);
        int at = c.addCapability(0x09, new byte[18], new byte[]{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1});
        int[] reads = {0};
        long[] written = {-1};
        c.setAccessHook(at + 16, 4, new PciConfigSpace.AccessHook() {
            @Override
            public void beforeRead() {
                reads[0]++;
                c.put(at + 16, 4, 0x1000 + reads[0]);
            }

            @Override
            public void afterWrite() {
                written[0] = c.get(at + 16, 4);
            }
        });
        assertEquals(0x1001, read(c, at + 16, 4));
        assertEquals(0x10, read(c, at + 17, 1), "a read of part of the range");
        assertEquals(0, read(c, at + 12, 4), "outside the range: no hook");
        assertEquals(2, reads[0]);
        read(c, at + 14, 4); // overlaps the start
        assertEquals(3, reads[0]);
        write(c, at + 16, 4, 0xCAFE);
        assertEquals(0xCAFE, written[0], "the hook sees the stored value");
        write(c, at + 8, 4, 0xFFFF);
        assertEquals(0xCAFE, written[0]);
        assertThrows(IllegalArgumentException.class, () -> c.setAccessHook(254, 4, null));
    }
}
