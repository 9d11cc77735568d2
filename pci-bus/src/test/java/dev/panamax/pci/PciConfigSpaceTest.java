package dev.panamax.pci;

import static dev.panamax.pci.PciConfigSpace.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class PciConfigSpaceTest {
    @Test
    void readOnlyBitsIgnoreWrites() {
        var c = new PciConfigSpace(SIZE);
        c.set32(0x40, 0x12345678);
        c.write(0x40, 4, 0xFFFFFFFF);
        assertEquals(0x12345678, c.read(0x40, 4));
        c.write(0x40, 1, 0);
        assertEquals(0x12345678, c.read(0x40, 4));
    }

    @Test
    void readWriteBitsTakeTheValueAndOthersStay() {
        var c = new PciConfigSpace(SIZE);
        c.set32(0x40, 0xA5A5A5A5);
        c.setWritable(0x40, 4, 0x00FF0F00);
        c.write(0x40, 4, 0x00000000);
        assertEquals(0xA500A0A5, c.read(0x40, 4));
        c.write(0x42, 1, 0xFF);
        assertEquals(0xA5FFA0A5, c.read(0x40, 4));
        c.write(0x41, 2, 0x3C3C);
        assertEquals(0xA53CACA5, c.read(0x40, 4));
        assertEquals(0x00FF0F00, c.writableMask(0x40, 4));
    }

    @Test
    void writeOneToClearBitsClearOnlyWhereOnesAreWritten() {
        var c = new PciConfigSpace(SIZE);
        c.initHeader(0x1234, 0x5678, 1, 0x020000, 0, 0);
        c.set16(STATUS, STATUS_CAP_LIST | STATUS_SIG_TARGET_ABORT | STATUS_REC_MASTER_ABORT | STATUS_DETECTED_PARITY);
        c.write(STATUS, 2, STATUS_REC_MASTER_ABORT | STATUS_CAP_LIST);
        assertEquals(STATUS_CAP_LIST | STATUS_SIG_TARGET_ABORT | STATUS_DETECTED_PARITY, c.read(STATUS, 2));
        c.write(STATUS, 2, 0);
        assertEquals(STATUS_CAP_LIST | STATUS_SIG_TARGET_ABORT | STATUS_DETECTED_PARITY, c.read(STATUS, 2));
        c.write(STATUS + 1, 1, 0xFF);
        assertEquals(STATUS_CAP_LIST, c.read(STATUS, 2));
    }

    @Test
    void headerFieldsAndCommandMask() {
        var c = new PciConfigSpace(SIZE);
        c.initHeader(0x1AF4, 0x1041, 0x7, 0x0C0330, 0x1AF4, 0x1100);
        assertEquals(0x10411AF4, c.read(VENDOR_ID, 4));
        assertEquals(0x0C033007, c.read(REVISION_ID, 4));
        assertEquals(0x0C0330, c.classCode());
        assertEquals(0x11001AF4, c.read(SUBSYSTEM_VENDOR_ID, 4));
        c.write(COMMAND, 2, 0xFFFF);
        assertEquals(0x0547, c.read(COMMAND, 2));
        c.write(VENDOR_ID, 4, 0);
        assertEquals(0x10411AF4, c.read(VENDOR_ID, 4));
        c.write(INTERRUPT_LINE, 1, 0x2B);
        assertEquals(0x2B, c.read(INTERRUPT_LINE, 1));
        c.write(INTERRUPT_PIN, 1, 3);
        assertEquals(0, c.read(INTERRUPT_PIN, 1));
    }

    @Test
    void littleEndianAccessesOfEveryWidth() {
        var c = new PciConfigSpace(EXTENDED_SIZE);
        c.set32(0xFFC, 0xDDCCBBAA);
        assertEquals(0xAA, c.read(0xFFC, 1));
        assertEquals(0xDD, c.read(0xFFF, 1));
        assertEquals(0xCCBB, c.read(0xFFD, 2));
        assertEquals(0xDDCCBBAA, c.read(0xFFC, 4));
    }

    @Test
    void badAccessesAndSizesThrow() {
        assertThrows(IllegalArgumentException.class, () -> new PciConfigSpace(512));
        var c = new PciConfigSpace(SIZE);
        assertThrows(IllegalArgumentException.class, () -> c.read(0xFE, 4));
        assertThrows(IllegalArgumentException.class, () -> c.read(0, 3));
        assertThrows(IllegalArgumentException.class, () -> c.write(-1, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> c.read(0x100, 1));
    }

    @Test
    void capabilityListIsLinkedAndWalkable() {
        var c = new PciConfigSpace(SIZE);
        assertEquals(List.of(), c.capabilities());
        int pm = c.addCapability(CAP_ID_PM, new byte[6]);
        int msi = c.addCapability(CAP_ID_MSI, new byte[11]); // 13 bytes: next one rounds up to a dword
        int vendor = c.addCapability(CAP_ID_VNDR, new byte[] {3, 0x42});
        assertEquals(0x40, pm);
        assertEquals(0x48, msi);
        assertEquals(0x58, vendor);
        assertTrue((c.read(STATUS, 2) & STATUS_CAP_LIST) != 0);
        assertEquals(0x40, c.read(CAPABILITY_LIST, 1));
        assertEquals(0x48, c.read(0x41, 1));
        assertEquals(0x58, c.read(0x49, 1));
        assertEquals(0, c.read(0x59, 1));
        assertEquals(0x42, c.read(vendor + 3, 1));
        assertEquals(List.of(new Capability(CAP_ID_PM, 0x40), new Capability(CAP_ID_MSI, 0x48),
                new Capability(CAP_ID_VNDR, 0x58)), c.capabilities());
        assertEquals(0x48, c.findCapability(CAP_ID_MSI));
        assertEquals(-1, c.findCapability(CAP_ID_MSIX));
        // The list is read-only to software.
        c.write(CAPABILITY_LIST, 1, 0);
        c.write(0x41, 1, 0);
        assertEquals(3, c.capabilities().size());
    }

    @Test
    void capabilityThatDoesNotFitThrows() {
        var c = new PciConfigSpace(SIZE);
        c.addCapability(CAP_ID_VNDR, new byte[180]);
        var e = assertThrows(IllegalArgumentException.class, () -> c.addCapability(CAP_ID_MSI, new byte[20]));
        assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
    }

    @Test
    void loopingListIsReported() {
        var c = new PciConfigSpace(SIZE);
        int at = c.addCapability(CAP_ID_VNDR, new byte[2]);
        c.set8(at + 1, at); // points at itself
        assertThrows(IllegalStateException.class, c::capabilities);
    }

    @Test
    void extendedCapabilitiesChainFrom0x100() {
        var c = new PciConfigSpace(EXTENDED_SIZE);
        assertEquals(0, c.read(EXTENDED_START, 4), "no extended capabilities: a zero header");
        assertEquals(List.of(), c.extendedCapabilities());
        int dsn = c.addExtendedCapability(PciExpress.EXT_CAP_ID_DSN, 1, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        int vsec = c.addExtendedCapability(PciExpress.EXT_CAP_ID_VNDR, 1, new byte[5]);
        int ltr = c.addExtendedCapability(PciExpress.EXT_CAP_ID_LTR, 1, new byte[4]);
        assertEquals(0x100, dsn);
        assertEquals(0x10C, vsec);
        assertEquals(0x118, ltr, "after 4 + 5 bytes, rounded up to a dword");
        assertEquals(0x10C1_0003, c.read(dsn, 4), "id 3, version 1, next 0x10C");
        assertEquals(0x1181_000B, c.read(vsec, 4));
        assertEquals(0x0001_0018, c.read(ltr, 4), "the last: next 0");
        assertEquals(0x04030201, c.read(dsn + 4, 4));
        assertEquals(List.of(new ExtendedCapability(PciExpress.EXT_CAP_ID_DSN, 1, 0x100),
                new ExtendedCapability(PciExpress.EXT_CAP_ID_VNDR, 1, 0x10C),
                new ExtendedCapability(PciExpress.EXT_CAP_ID_LTR, 1, 0x118)), c.extendedCapabilities());
        c.write(dsn, 4, 0); // read-only
        assertEquals(3, c.extendedCapabilities().size());
    }

    @Test
    void extendedCapabilityHeaders() {
        int h = PciExpress.extCapHeader(0x10, 1, 0x160);
        assertEquals(0x1601_0010, h);
        assertEquals(0x10, PciExpress.extCapId(h));
        assertEquals(1, PciExpress.extCapVersion(h));
        assertEquals(0x160, PciExpress.extCapNext(h));
        assertEquals(0x160, PciExpress.extCapNext(h | 0x0030_0000), "the two reserved low bits are masked");
        assertEquals(0xFFC, PciExpress.extCapNext(0xFFFF_FFFF));
    }

    @Test
    void extendedCapabilitiesNeedTheExtendedSpace() {
        var small = new PciConfigSpace(SIZE);
        assertThrows(IllegalArgumentException.class, () -> small.addExtendedCapability(PciExpress.EXT_CAP_ID_DSN, 1, new byte[8]));
        assertEquals(List.of(), small.extendedCapabilities());
        var c = new PciConfigSpace(EXTENDED_SIZE);
        c.addExtendedCapability(PciExpress.EXT_CAP_ID_VNDR, 1, new byte[EXTENDED_SIZE - EXTENDED_START - 8]);
        assertThrows(IllegalArgumentException.class, () -> c.addExtendedCapability(PciExpress.EXT_CAP_ID_DSN, 1, new byte[8]));
        c.addExtendedCapability(PciExpress.EXT_CAP_ID_LTR, 1, new byte[0]); // the last dword still takes a header
        c.set32(0xFFC, PciExpress.extCapHeader(PciExpress.EXT_CAP_ID_LTR, 1, 0x100)); // loops back
        assertThrows(IllegalStateException.class, c::extendedCapabilities);
    }
}
