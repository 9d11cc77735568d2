package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.firmware.MpTable.Bus;
import dev.panamax.firmware.MpTable.Entry;
import dev.panamax.firmware.MpTable.IoApic;
import dev.panamax.firmware.MpTable.IoInterrupt;
import dev.panamax.firmware.MpTable.LocalInterrupt;
import dev.panamax.firmware.MpTable.Processor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class MpTableTest {
    private static final long BASE = 0xF0000;

    private static int sum(MemorySegment m, long offset, long length) {
        int s = 0;
        for (long i = 0; i < length; i++) {
            s += m.get(ValueLayout.JAVA_BYTE, offset + i);
        }
        return s & 0xFF;
    }

    private static String ascii(MemorySegment m, long offset, int length) {
        byte[] b = m.asSlice(offset, length).toArray(ValueLayout.JAVA_BYTE);
        return new String(b, java.nio.charset.StandardCharsets.US_ASCII);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4, 64, 254})
    void layoutAndChecksums(int cpus) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(0x100000);
            MpTable table = MpTable.standard(cpus);
            int entries = cpus + 1 + 1 + 16 + 2;
            int baseLength = 44 + cpus * 20 + (1 + 1 + 16 + 2) * 8;
            assertEquals(16 + baseLength, table.writeTo(ram, BASE));
            assertEquals(16 + baseLength, table.size());

            // Floating pointer (MP spec 4.1): 16 bytes, sums to 0.
            assertEquals("_MP_", ascii(ram, BASE, 4));
            assertEquals(BASE + 16, Le.u32(ram, BASE + 4));
            assertEquals(1, Le.u8(ram, BASE + 8));
            assertEquals(4, Le.u8(ram, BASE + 9));
            assertEquals(0, sum(ram, BASE, 16));
            assertEquals(0, Le.u8(ram, BASE + 11));           // feature byte 1: config table present

            // Configuration table header (4.2): base table sums to 0.
            long c = BASE + 16;
            assertEquals("PCMP", ascii(ram, c, 4));
            assertEquals(baseLength, Le.u16(ram, c + 4));
            assertEquals(4, Le.u8(ram, c + 6));
            assertEquals(0, sum(ram, c, baseLength));
            assertEquals("PANAMAX ", ascii(ram, c + 8, 8));
            assertEquals("PANAMAX VM  ", ascii(ram, c + 16, 12));
            assertEquals(entries, Le.u16(ram, c + 34));
            assertEquals(0xFEE00000L, Le.u32(ram, c + 36));
            assertEquals(0, Le.u16(ram, c + 40));              // no extended table

            // Processor entries first, 20 bytes each.
            for (int id = 0; id < cpus; id++) {
                long p = c + 44 + id * 20L;
                assertEquals(0, Le.u8(ram, p));
                assertEquals(id, Le.u8(ram, p + 1));
                assertEquals(id == 0 ? 3 : 1, Le.u8(ram, p + 3)); // EN, and BP on the BSP
            }
            long at = c + 44 + cpus * 20L;
            assertEquals(1, Le.u8(ram, at));                    // bus
            assertEquals(0, Le.u8(ram, at + 1));
            assertEquals("ISA   ", ascii(ram, at + 2, 6));
            at += 8;
            assertEquals(2, Le.u8(ram, at));                    // I/O APIC
            assertEquals(cpus, Le.u8(ram, at + 1));
            assertEquals(0x11, Le.u8(ram, at + 2));
            assertEquals(1, Le.u8(ram, at + 3));
            assertEquals(0xFEC00000L, Le.u32(ram, at + 4));
            at += 8;
            for (int irq = 0; irq < 16; irq++, at += 8) {      // I/O interrupts: ISA IRQ i -> pin i
                assertEquals(3, Le.u8(ram, at));
                assertEquals(0, Le.u8(ram, at + 1));            // INT
                assertEquals(0, Le.u8(ram, at + 4));            // bus 0
                assertEquals(irq, Le.u8(ram, at + 5));
                assertEquals(cpus, Le.u8(ram, at + 6));
                assertEquals(irq, Le.u8(ram, at + 7));
            }
            assertEquals(4, Le.u8(ram, at));                    // LINT0: ExtINT to APIC 0
            assertEquals(3, Le.u8(ram, at + 1));
            assertEquals(0, Le.u8(ram, at + 6));
            assertEquals(0, Le.u8(ram, at + 7));
            at += 8;
            assertEquals(4, Le.u8(ram, at));                    // LINT1: NMI to all APICs
            assertEquals(1, Le.u8(ram, at + 1));
            assertEquals(0xFF, Le.u8(ram, at + 6));
            assertEquals(1, Le.u8(ram, at + 7));
            assertEquals(c + baseLength, at + 8);

            assertEquals(table, MpTable.readFrom(ram, BASE));
        }
    }

    @Test
    void aPciBusAndItsInterruptsSortIntoPlace() {
        MpTable table = MpTable.standard(2).with(
                new IoInterrupt(MpTable.INT, 0xF, 1, (3 << 2), 2, 16),   // PCI 00:03 INTA# -> pin 16, level/low
                new Bus(1, "PCI"));
        List<Entry> e = table.entries();
        assertEquals(new Bus(0, "ISA"), e.get(2));
        assertEquals(new Bus(1, "PCI"), e.get(3));
        assertTrue(e.get(4) instanceof IoApic);
        assertEquals(new IoInterrupt(MpTable.INT, 0xF, 1, 12, 2, 16), e.get(5 + 16));
        assertTrue(e.get(e.size() - 1) instanceof LocalInterrupt);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(0x100000);
            table.writeTo(ram, BASE);
            assertEquals(0, sum(ram, BASE + 16, table.baseTableLength()));
            assertEquals(table, MpTable.readFrom(ram, BASE));
        }
    }

    @Test
    void processorsCarryTheirSignatureAndFeatures() {
        Processor bsp = (Processor) MpTable.standard(1).entries().get(0);
        assertEquals(new Processor(0, 0x14, true, true, 0x600, 0x201), bsp);
    }

    @Test
    void readingDetectsCorruption() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(0x100000);
            MpTable.standard(2).writeTo(ram, BASE);
            ram.set(ValueLayout.JAVA_BYTE, BASE + 16 + 50, (byte) 0x77);
            assertThrows(IllegalArgumentException.class, () -> MpTable.readFrom(ram, BASE));
            MpTable.standard(2).writeTo(ram, BASE);
            ram.set(ValueLayout.JAVA_BYTE, BASE + 12, (byte) 1);
            assertThrows(IllegalArgumentException.class, () -> MpTable.readFrom(ram, BASE));
            assertThrows(IllegalArgumentException.class, () -> MpTable.readFrom(ram, 0x1000));
        }
    }

    @Test
    void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> MpTable.standard(0));
        assertThrows(IllegalArgumentException.class, () -> MpTable.standard(255));
        assertThrows(IllegalArgumentException.class, () -> new Bus(0, "TOOLONG"));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment small = arena.allocate(0xF0100);
            assertThrows(IllegalArgumentException.class, () -> MpTable.standard(4).writeTo(small, BASE));
            MemorySegment ram = arena.allocate(0x100000);
            assertThrows(IllegalArgumentException.class, () -> MpTable.standard(4).writeTo(ram, BASE + 8));
        }
    }

    /** A PCI bus becomes MP bus 0 (ISA moves to 1), its INTx# sources level-triggered, active low. */
    @Test
    void withPciBusAddsBusZeroAndItsInterrupts() {
        MpTable base = MpTable.standard(1);
        MpTable t = base.withPciBus(List.of(new MpTable.InterruptSource(0, 3, 2, 17)));
        assertTrue(t.entries().contains(new Bus(0, "PCI")));
        assertTrue(t.entries().contains(new Bus(1, "ISA")));
        assertTrue(t.entries().contains(new IoInterrupt(MpTable.INT, 0xF, 0, 3 << 2 | 1, base.ioApicId(), 17)));
        assertTrue(t.entries().contains(new IoInterrupt(MpTable.INT, MpTable.CONFORMS, 1, 4, base.ioApicId(), 4)));
        assertEquals(base.entries().size() + 2, t.entries().size());
        assertThrows(IllegalArgumentException.class,
                () -> base.withPciBus(List.of(new MpTable.InterruptSource(1, 3, 2, 17))), "only PCI bus 0");
        assertThrows(IllegalArgumentException.class,
                () -> base.withPciBus(List.of(new MpTable.InterruptSource(0, 3, 5, 17))), "pins are 1..4");
    }
}
