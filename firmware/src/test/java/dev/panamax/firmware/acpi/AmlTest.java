package dev.panamax.firmware.acpi;

import static dev.panamax.firmware.acpi.Aml.concat;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link Aml} and {@link AmlResource} byte for byte: by hand against ACPI 6.5 chapter 20 where the grammar is
 * simple, and against iasl for every construct (the same ASL compiled by ACPICA gives the same AML).
 */
class AmlTest {
    @TempDir
    Path dir;

    private static byte[] hex(String s) {
        return HexFormat.of().parseHex(s.replace(" ", ""));
    }

    private void assertIasl(String asl, byte[] aml) throws Exception {
        byte[] expected = Iasl.compileBody(dir, asl);
        assertEquals(HexFormat.of().formatHex(expected), HexFormat.of().formatHex(aml), asl);
    }

    @Test
    void pkgLengthUsesTheFewestBytes() {
        assertArrayEquals(hex("01"), Aml.pkgLength(0));
        assertArrayEquals(hex("3f"), Aml.pkgLength(62));
        // 63 body bytes: total 65 = 0x41 in two bytes: lead 0x40 | 0x1, then 0x41 >> 4 = 0x04.
        assertArrayEquals(hex("41 04"), Aml.pkgLength(63));
        assertArrayEquals(hex("4f ff"), Aml.pkgLength(0xFFF - 2));
        assertArrayEquals(hex("81 00 01"), Aml.pkgLength(0xFFE));
        assertArrayEquals(hex("8f ff ff"), Aml.pkgLength(0xFFFFF - 3));
        assertArrayEquals(hex("c1 00 00 01"), Aml.pkgLength(0xFFFFF - 2));
        assertArrayEquals(hex("cf ff ff ff"), Aml.pkgLength(Aml.MAX_PKG_LENGTH - 4));
        assertThrows(IllegalArgumentException.class, () -> Aml.pkgLength(Aml.MAX_PKG_LENGTH - 3));
        assertThrows(IllegalArgumentException.class, () -> Aml.pkgLength(-1));
    }

    @Test
    void nameStrings() {
        assertArrayEquals(hex("5f48 4944"), Aml.nameString("_HID"));
        assertArrayEquals(hex("5f53 355f"), Aml.nameString("_S5"));
        assertArrayEquals(hex("5c 5f53 425f"), Aml.nameString("\\_SB"));
        assertArrayEquals(hex("5c 2e 5f53425f 50434930"), Aml.nameString("\\_SB.PCI0"));
        assertArrayEquals(hex("2f 03 5f53425f 50434930 434f4d31"), Aml.nameString("_SB.PCI0.COM1"));
        assertArrayEquals(hex("5e 5e 43303030"), Aml.nameString("^^C000"));
        assertArrayEquals(hex("5c 00"), Aml.nameString("\\"));
        assertThrows(IllegalArgumentException.class, () -> Aml.nameString("_HIDX"));
        assertThrows(IllegalArgumentException.class, () -> Aml.nameString("0ABC"));
        assertThrows(IllegalArgumentException.class, () -> Aml.nameString("a"));
        assertThrows(IllegalArgumentException.class, () -> Aml.nameString("\\_SB..X"));
    }

    @Test
    void integersTakeTheSmallestEncoding() throws Exception {
        assertArrayEquals(hex("00"), Aml.integer(0));
        assertArrayEquals(hex("01"), Aml.integer(1));
        assertArrayEquals(hex("ff"), Aml.integer(-1));
        assertArrayEquals(hex("0a 02"), Aml.integer(2));
        assertArrayEquals(hex("0a ff"), Aml.integer(0xFF));
        assertArrayEquals(hex("0b 0001"), Aml.integer(0x100));
        assertArrayEquals(hex("0c 00000001"), Aml.integer(0x1000000));
        assertArrayEquals(hex("0c ffffffff"), Aml.integer(0xFFFFFFFFL));
        assertArrayEquals(hex("0e 0000000001000000"), Aml.integer(1L << 32));
        assertIasl("Name (I0, 0) Name (I1, 1) Name (I2, Ones) Name (I3, 2) Name (I4, 0xFF) Name (I5, 0x100)"
                        + " Name (I6, 0xFFFF) Name (I7, 0x10000) Name (I8, 0xFFFFFFFF) Name (I9, 0x100000000)"
                        + " Name (IA, 0xFFFFFFFFFFFFFFFE)",
                concat(Aml.name("I0", Aml.integer(0)), Aml.name("I1", Aml.integer(1)), Aml.name("I2", Aml.integer(-1)),
                        Aml.name("I3", Aml.integer(2)), Aml.name("I4", Aml.integer(0xFF)),
                        Aml.name("I5", Aml.integer(0x100)), Aml.name("I6", Aml.integer(0xFFFF)),
                        Aml.name("I7", Aml.integer(0x10000)), Aml.name("I8", Aml.integer(0xFFFFFFFFL)),
                        Aml.name("I9", Aml.integer(1L << 32)), Aml.name("IA", Aml.integer(-2))));
    }

    @Test
    void stringsAndEisaIds() throws Exception {
        assertArrayEquals(hex("0d 41435049303030 3700"), Aml.string("ACPI0007"));
        assertEquals(0x080AD041L, Aml.eisaIdValue("PNP0A08"));
        assertEquals(0x030AD041L, Aml.eisaIdValue("PNP0A03"));
        assertThrows(IllegalArgumentException.class, () -> Aml.eisaIdValue("pnp0a08"));
        assertThrows(IllegalArgumentException.class, () -> Aml.string("caf\u00e9"));
        assertIasl("Name (_HID, \"ACPI0007\") Name (_CID, EisaId (\"PNP0A03\")) Name (H2, EisaId (\"PNP0501\"))"
                        + " Name (H3, EisaId (\"PNP0B00\")) Name (H4, EisaId (\"PNP0F13\")) Name (S0, \"\")",
                concat(Aml.name("_HID", Aml.string("ACPI0007")), Aml.name("_CID", Aml.eisaId("PNP0A03")),
                        Aml.name("H2", Aml.eisaId("PNP0501")), Aml.name("H3", Aml.eisaId("PNP0B00")),
                        Aml.name("H4", Aml.eisaId("PNP0F13")), Aml.name("S0", Aml.string(""))));
    }

    @Test
    void scopesDevicesAndNames() throws Exception {
        assertIasl("Name (\\_S5, Package () {5, 5, 0, 0}) Scope (\\_SB) { Device (PCI0) { Name (_ADR, 0) "
                        + "Device (^C001) { Name (_ADR, 1) } } }",
                concat(Aml.name("\\_S5", Aml.packageOp(Aml.integer(5), Aml.integer(5), Aml.integer(0), Aml.integer(0))),
                        Aml.scope("\\_SB", Aml.device("PCI0", Aml.name("_ADR", Aml.integer(0)),
                                Aml.device("^C001", Aml.name("_ADR", Aml.integer(1)))))));
        assertIasl("Scope (\\_SB) { Device (PCI0) { Name (_ADR, 0) } }"
                        + " Device (\\_SB.PCI0.COM1) { Name (_ADR, 1) } Scope (\\) { Name (R0, 0) }",
                concat(Aml.scope("\\_SB", Aml.device("PCI0", Aml.name("_ADR", Aml.integer(0)))),
                        Aml.device("\\_SB.PCI0.COM1", Aml.name("_ADR", Aml.integer(1))),
                        Aml.scope("\\", Aml.name("R0", Aml.integer(0)))));
    }

    @Test
    void aLongPackageTakesATwoByteLength() throws Exception {
        StringBuilder asl = new StringBuilder("Device (BIG) { Name (_ADR, 0)");
        byte[][] names = new byte[41][];
        names[0] = Aml.name("_ADR", Aml.integer(0));
        for (int i = 0; i < 40; i++) {
            asl.append(String.format(" Name (N%03d, 0x%X)", i, i * 1000));
            names[i + 1] = Aml.name(String.format("N%03d", i), Aml.integer(i * 1000L));
        }
        assertIasl(asl.append(" }").toString(), Aml.device("BIG", names));
    }

    @Test
    void methodsAndReturn() throws Exception {
        assertIasl("Method (_STA, 0, NotSerialized) { Return (0x0F) } Method (M1, 3, Serialized) { Return (\"x\") }"
                        + " Method (M2, 7, NotSerialized) { Return (Package () { 1, \"a\", Package () { 2 } }) }",
                concat(Aml.method("_STA", 0, false, Aml.returnOp(Aml.integer(0x0F))),
                        Aml.method("M1", 3, true, Aml.returnOp(Aml.string("x"))),
                        Aml.method("M2", 7, false, Aml.returnOp(Aml.packageOp(Aml.integer(1), Aml.string("a"),
                                Aml.packageOp(Aml.integer(2)))))));
        assertThrows(IllegalArgumentException.class, () -> Aml.method("M", 8, false));
    }

    @Test
    void buffers() throws Exception {
        assertIasl("Name (B0, Buffer () { 0x01, 0x02, 0xFF }) Name (B1, Buffer () { 0x00 })",
                concat(Aml.name("B0", Aml.buffer(hex("0102ff"))), Aml.name("B1", Aml.buffer(hex("00")))));
    }

    @Test
    void smallResourceDescriptors() throws Exception {
        assertArrayEquals(hex("47 01 f803 f803 01 08"), AmlResource.io(0x3F8, 0x3F8, 1, 8));
        assertArrayEquals(hex("22 1000"), AmlResource.irqNoFlags(4));
        assertIasl("Name (_CRS, ResourceTemplate () { IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08, ) "
                        + "IRQNoFlags () {4} IO (Decode16, 0x0060, 0x0060, 0x00, 0x01, ) IRQNoFlags () {12} })",
                Aml.name("_CRS", AmlResource.resourceTemplate(AmlResource.io(0x3F8, 0x3F8, 1, 8),
                        AmlResource.irqNoFlags(4), AmlResource.io(0x60, 0x60, 0, 1), AmlResource.irqNoFlags(12))));
    }

    @Test
    void largeResourceDescriptors() throws Exception {
        assertIasl("Name (_CRS, ResourceTemplate () {"
                        + " WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0x0000, 0x0000, 0x00FF, 0x0000, 0x0100, , , )"
                        + " WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300, , , , TypeStatic, DenseTranslation)"
                        + " DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x00000000, 0xC0000000, 0xFEBFFFFF, 0x00000000, 0x3EC00000, , , , AddressRangeMemory, TypeStatic)"
                        + " DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable, ReadWrite, 0x00000000, 0xA0000, 0xBFFFF, 0x00000000, 0x20000, , , , AddressRangeMemory, TypeStatic)"
                        + " QWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0x0, 0x8000000000, 0xFFFFFFFFFF, 0x0, 0x8000000000, , , , AddressRangeMemory, TypeStatic)"
                        + " Memory32Fixed (ReadWrite, 0xE0000000, 0x10000000, )"
                        + " Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, , , ) {9}"
                        + " Interrupt (ResourceConsumer, Edge, ActiveLow, Shared, , , ) {16, 17, 0x100}"
                        + " })",
                Aml.name("_CRS", AmlResource.resourceTemplate(
                        AmlResource.wordBusNumber(0, 0xFF),
                        AmlResource.wordIo(0x0D00, 0xFFFF),
                        AmlResource.dwordMemory(false, 0xC000_0000L, 0xFEC0_0000L - 0xC000_0000L),
                        AmlResource.dwordMemory(true, 0xA0000, 0x20000),
                        AmlResource.qwordMemory(false, 0x80_0000_0000L, 0x80_0000_0000L),
                        AmlResource.memory32Fixed(0xE000_0000L, 0x1000_0000L),
                        AmlResource.interrupt(AmlResource.INT_CONSUMER, 9),
                        AmlResource.interrupt(AmlResource.INT_CONSUMER | AmlResource.INT_EDGE | AmlResource.INT_ACTIVE_LOW
                                | AmlResource.INT_SHARED, 16, 17, 0x100))));
    }

    @Test
    void resourceArgumentsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> AmlResource.irqNoFlags(16));
        assertThrows(IllegalArgumentException.class, () -> AmlResource.io(0x60, 0x60, 0, 256));
        assertThrows(IllegalArgumentException.class, () -> AmlResource.wordIo(0x100, 0xFF));
        assertThrows(IllegalArgumentException.class, () -> AmlResource.dwordMemory(false, 0xF000_0000L, 0x2000_0000L));
        assertThrows(IllegalArgumentException.class, () -> AmlResource.qwordMemory(false, 1L << 40, 0));
        assertThrows(IllegalArgumentException.class, () -> AmlResource.interrupt(AmlResource.INT_CONSUMER));
    }
}
