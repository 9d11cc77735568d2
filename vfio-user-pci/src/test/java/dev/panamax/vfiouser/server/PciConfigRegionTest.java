package dev.panamax.vfiouser.server;

import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import org.junit.jupiter.api.Test;

import static dev.panamax.pci.PciConfigSpace.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A served device's configuration space, described with pci-bus's model ({@link PciFunction},
 * {@link PciConfigSpace}, {@link MsixCapability}) and reached as the client reaches it: byte arrays through
 * {@link PciConfigRegion}, without a socket.
 */
class PciConfigRegionTest {
    private static final MsiListener NO_MSI = new MsiListener() {
        @Override
        public void onVectorChanged(int vector, long address, int data, boolean masked) {
        }

        @Override
        public void onMessage(int vector, long address, int data) {
        }
    };

    private static long read(PciConfigRegion c, int offset, int width) {
        byte[] b = new byte[width];
        c.read(offset, b);
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    private static void write(PciConfigRegion c, int offset, int width, long value) {
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        c.write(offset, b);
    }

    @Test
    void headerFields() {
        PciFunction f = new PciFunction("test", new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(0x1af4, 0x1042, 1, 0x010000, 0x1af4, 0x0002);
        f.setInterruptPin(1);
        PciConfigRegion c = new PciConfigRegion(f);
        assertEquals(256, c.size());
        assertEquals(0x10421af4L, read(c, 0, 4));
        assertEquals(0x01000001L, read(c, REVISION_ID, 4));
        assertEquals(0x00021af4L, read(c, SUBSYSTEM_VENDOR_ID, 4));
        assertEquals(1, read(c, INTERRUPT_PIN, 1));
        assertEquals(0, read(c, CAPABILITY_LIST, 1));
        assertEquals(0, read(c, STATUS, 2) & STATUS_CAP_LIST);
        // Read-only except what the mask allows.
        write(c, INTERRUPT_PIN, 1, 4);
        assertEquals(1, read(c, INTERRUPT_PIN, 1));
        write(c, INTERRUPT_LINE, 1, 11);
        assertEquals(11, read(c, INTERRUPT_LINE, 1));
        // A whole-space read, as a client may do, is the same bytes.
        byte[] all = new byte[256];
        c.read(0, all);
        assertEquals(0x1af4, (all[0] & 0xFF) | (all[1] & 0xFF) << 8);
        assertEquals(11, all[INTERRUPT_LINE]);
    }

    @Test
    void barSizing() {
        PciFunction f = VfioUserDevice.pciFunction("test", 1, 2, 3, 4);
        PciConfigRegion c = new PciConfigRegion(f);
        f.setBar(1, PciBar.io(256), null);
        write(c, BASE_ADDRESS_0 + 4, 4, 0xFFFFFFFFL);
        assertEquals(0xFFFFFF01L, read(c, BASE_ADDRESS_0 + 4, 4));
        write(c, BASE_ADDRESS_0 + 4, 4, 0xC000);
        assertEquals(0xC001L, read(c, BASE_ADDRESS_0 + 4, 4));
        f.setBar(2, PciBar.memory64(1L << 33, false), null);
        write(c, BASE_ADDRESS_0 + 8, 4, 0xFFFFFFFFL);
        write(c, BASE_ADDRESS_0 + 12, 4, 0xFFFFFFFFL);
        assertEquals(0x4L, read(c, BASE_ADDRESS_0 + 8, 4));
        assertEquals(0xFFFFFFFEL, read(c, BASE_ADDRESS_0 + 12, 4));
        assertThrows(IllegalArgumentException.class, () -> f.setBar(0, PciBar.memory32(100), null));
        assertThrows(IllegalArgumentException.class, () -> f.setBar(5, PciBar.memory64(4096, false), null));
    }

    @Test
    void capabilityList() {
        PciFunction f = VfioUserDevice.pciFunction("test", 1, 2, 3, 4);
        f.setBar(0, PciBar.memory32(4096), null);
        PciConfigRegion c = new PciConfigRegion(f);
        int msix = new MsixCapability(f, 4, 0, 0, 0x800, NO_MSI).offset();
        int vendor = f.config().addCapability(CAP_ID_VNDR, new byte[]{4, 0x55});
        assertEquals(0x40, msix);
        assertEquals(0x4C, vendor);
        assertEquals(msix, read(c, CAPABILITY_LIST, 1));
        assertEquals(0x11 | (vendor << 8), read(c, msix, 2));
        assertEquals(0x09, read(c, vendor, 2));
        assertNotEquals(0, read(c, STATUS, 2) & STATUS_CAP_LIST);
        // MSI-X Message Control: only enable and function mask are writable.
        write(c, msix + 2, 2, 0xFFFF);
        assertEquals(0xC003L, read(c, msix + 2, 2));
        assertThrows(IllegalArgumentException.class, () -> f.config().addCapability(0x10, new byte[250]));
    }

    @Test
    void hooksRunAroundAccessesThatTouchTheirRange() {
        PciFunction f = VfioUserDevice.pciFunction("test", 1, 2, 3, 4);
        PciConfigRegion c = new PciConfigRegion(f);
        int at = f.config().addCapability(CAP_ID_VNDR, new byte[18]);
        f.config().setWritable(at + 16, 4, 0xFFFF_FFFF);
        int[] reads = {0};
        long[] written = {-1};
        f.addConfigReadHook(at + 16, 4, () -> {
            reads[0]++;
            f.config().set32(at + 16, 0x1000 + reads[0]);
        });
        f.addConfigWriteHook(at + 16, 4, () -> written[0] = f.config().get32(at + 16));
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
        assertThrows(IllegalArgumentException.class, () -> f.addConfigReadHook(254, 4, () -> { }));
    }

    @Test
    void accessesAreSplitNaturallyAligned() {
        StringBuilder log = new StringBuilder();
        NaturalAccesses.split(0x3, 13, 8, (at, width, i) -> log.append(at).append(':').append(width).append(' '));
        assertEquals("3:1 4:4 8:8 ", log.toString());
        log.setLength(0);
        NaturalAccesses.split(0x6, 3, 4, (at, width, i) -> log.append(at).append(':').append(width).append(' '));
        assertEquals("6:2 8:1 ", log.toString());
    }
}
