package dev.panamax.firmware.acpi;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.firmware.MpTable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Each table's fields at the spec's offsets, their checksums and lengths, and the layout in guest memory. */
class AcpiTablesTest {
    static final AcpiMachine.Window MMIO32 = new AcpiMachine.Window(0xC000_0000L, 0x2000_0000L);
    static final AcpiMachine.Window MMIO64 = new AcpiMachine.Window(0x40_0000_0000L, 0x40_0000_0000L);

    /** Devices 1..3, INTA..INTD each, swizzled over GSIs 16..23 as the machine wires them. */
    static List<MpTable.InterruptSource> routes() {
        var list = new ArrayList<MpTable.InterruptSource>();
        for (int d = 1; d <= 3; d++) {
            for (int pin = 1; pin <= 4; pin++) {
                list.add(new MpTable.InterruptSource(0, d, pin, 16 + (d + pin - 1) % 8));
            }
        }
        return list;
    }

    /** The PM registers as Panamax's machine places them (its AcpiPm device). */
    public static final AcpiMachine.PmRegisters PM = new AcpiMachine.PmRegisters(9, 0x600, 0x604, 0x608, 1);

    static AcpiMachine machine(int cpus) {
        return AcpiMachine.pc(cpus, PM, 0xE000_0000L, MMIO32, MMIO64, routes());
    }

    private static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static String ascii(byte[] b, int offset, int length) {
        return new String(b, offset, length, StandardCharsets.US_ASCII);
    }

    @Test
    void everyTableHasItsHeaderLengthAndChecksum() {
        AcpiTables t = AcpiTables.build(machine(2));
        assertEquals(List.of("RSD PTR ", "FACS", "XSDT", "FACP", "APIC", "MCFG", "DSDT"),
                t.tables().stream().map(AcpiTables.Table::signature).toList());
        for (AcpiTables.Table table : t.tables()) {
            byte[] b = table.bytes();
            assertEquals(table.signature(), ascii(b, 0, table.signature().length()));
            if (table.signature().equals("RSD PTR ") || table.signature().equals("FACS")) {
                continue;
            }
            assertEquals(b.length, le(b).getInt(AcpiTable.LENGTH), table.signature() + " length");
            assertEquals(0, AcpiTable.sum8(b, 0, b.length), table.signature() + " checksum");
            assertEquals("PANAMX", ascii(b, 10, 6));
            assertEquals("PANAMAX ", ascii(b, 16, 8));
            assertEquals(1, le(b).getInt(24));
            assertEquals("PNMX", ascii(b, 28, 4));
            assertEquals(1, le(b).getInt(32));
        }
        assertEquals(1, t.table("XSDT").bytes()[AcpiTable.REVISION]);
        assertEquals(6, t.table("FACP").bytes()[AcpiTable.REVISION]);
        assertEquals(5, t.table("APIC").bytes()[AcpiTable.REVISION]);
        assertEquals(1, t.table("MCFG").bytes()[AcpiTable.REVISION]);
        assertEquals(2, t.table("DSDT").bytes()[AcpiTable.REVISION]);
    }

    @Test
    void layoutInTheBiosAreaBelowTheMpTable() {
        AcpiTables t = AcpiTables.build(machine(254));
        assertEquals(0xE0000, t.rsdpAddress());
        long end = 0xE0000;
        for (AcpiTables.Table table : t.tables()) {
            assertTrue(table.address() >= end, table.signature() + " overlaps the table before");
            assertEquals(0, table.address() % 16, table.signature() + " is 16-byte aligned");
            end = table.end();
        }
        assertEquals(0, t.table("FACS").address() % 64);
        assertTrue(end <= MpTable.ADDRESS, String.format("tables end at 0x%X", end));
        assertThrows(IllegalArgumentException.class, () -> AcpiTables.build(machine(4000)));
    }

    @Test
    void rsdpPointsAtTheXsdtWithBothChecksums() {
        AcpiTables t = AcpiTables.build(machine(1));
        byte[] r = t.tables().getFirst().bytes();
        assertEquals(36, r.length);
        assertEquals("RSD PTR ", ascii(r, 0, 8));
        assertEquals(0, AcpiTable.sum8(r, 0, 20));
        assertEquals(0, AcpiTable.sum8(r, 0, 36));
        assertEquals("PANAMX", ascii(r, 9, 6));
        assertEquals(2, r[15]);
        assertEquals(0, le(r).getInt(16));                  // no RSDT
        assertEquals(36, le(r).getInt(20));
        assertEquals(t.table("XSDT").address(), le(r).getLong(24));
    }

    @Test
    void xsdtListsFadtMadtMcfg() {
        AcpiTables t = AcpiTables.build(machine(1));
        ByteBuffer x = le(t.table("XSDT").bytes());
        assertEquals(36 + 3 * 8, x.capacity());
        assertEquals(t.table("FACP").address(), x.getLong(36));
        assertEquals(t.table("APIC").address(), x.getLong(44));
        assertEquals(t.table("MCFG").address(), x.getLong(52));
    }

    @Test
    void fadtFieldsAtTable59Offsets() {
        AcpiTables t = AcpiTables.build(machine(2));
        ByteBuffer f = le(t.table("FACP").bytes());
        long facs = t.table("FACS").address();
        long dsdt = t.table("DSDT").address();
        assertEquals(276, f.capacity());
        assertEquals(facs, f.getInt(36));                   // FIRMWARE_CTRL
        assertEquals(dsdt, f.getInt(40));                   // DSDT
        assertEquals(9, f.getShort(46));                    // SCI_INT
        assertEquals(0, f.getInt(48));                      // SMI_CMD: no SMM, ACPI mode always on
        assertEquals(0x600, f.getInt(56));                  // PM1a_EVT_BLK
        assertEquals(0, f.getInt(60));                      // PM1b_EVT_BLK
        assertEquals(0x604, f.getInt(64));                  // PM1a_CNT_BLK
        assertEquals(0, f.getInt(76));                      // PM_TMR_BLK
        assertEquals(0, f.getInt(80));                      // GPE0_BLK
        assertEquals(4, f.get(88));                         // PM1_EVT_LEN
        assertEquals(2, f.get(89));                         // PM1_CNT_LEN
        assertEquals(0, f.get(91));                         // PM_TMR_LEN
        assertEquals(0, f.get(92));                         // GPE0_BLK_LEN
        assertEquals(0x3, f.getShort(109));                 // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042
        assertEquals(1 | 1 << 4 | 1 << 5 | 1 << 10, f.getInt(112));  // WBINVD, PWR_BUTTON, SLP_BUTTON, RESET_REG_SUP
        assertArrayEquals(new byte[] {1, 8, 0, 1, 8, 6, 0, 0, 0, 0, 0, 0},
                Arrays.copyOfRange(f.array(), 116, 128));   // RESET_REG: SystemIO, 8 bits, byte access, 0x608
        assertEquals(1, f.get(128));                        // RESET_VALUE
        assertEquals(facs, f.getLong(132));                 // X_FIRMWARE_CTRL
        assertEquals(dsdt, f.getLong(140));                 // X_DSDT
        assertArrayEquals(new byte[] {1, 32, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0},
                Arrays.copyOfRange(f.array(), 148, 160));   // X_PM1a_EVT_BLK
        assertArrayEquals(new byte[12], Arrays.copyOfRange(f.array(), 160, 172));  // X_PM1b_EVT_BLK
        assertArrayEquals(new byte[] {1, 16, 0, 0, 4, 6, 0, 0, 0, 0, 0, 0},
                Arrays.copyOfRange(f.array(), 172, 184));   // X_PM1a_CNT_BLK
        assertArrayEquals(new byte[276 - 184], Arrays.copyOfRange(f.array(), 184, 276));  // no PM2, timer, GPE, sleep regs
    }

    @Test
    void facsIs64BytesVersion2() {
        byte[] f = AcpiTables.build(machine(1)).table("FACS").bytes();
        assertEquals(64, f.length);
        assertEquals("FACS", ascii(f, 0, 4));
        assertEquals(64, le(f).getInt(4));
        assertEquals(2, f[32]);
    }

    @Test
    void madtEntries() {
        ByteBuffer m = le(AcpiTables.build(machine(2)).table("APIC").bytes());
        assertEquals(0xFEE0_0000, m.getInt(36));
        assertEquals(1, m.getInt(40));                      // PCAT_COMPAT
        byte[] entries = Arrays.copyOfRange(m.array(), 44, m.capacity());
        byte[] expected = {
            0, 8, 0, 0, 1, 0, 0, 0,                         // Local APIC: UID 0, APIC id 0, enabled
            0, 8, 1, 1, 1, 0, 0, 0,                         // UID 1, APIC id 1
            1, 12, 2, 0, 0, 0, (byte) 0xC0, (byte) 0xFE, 0, 0, 0, 0,    // I/O APIC id 2 at 0xFEC00000, GSI base 0
            2, 10, 0, 0, 0, 0, 0, 0, 0, 0,                  // ISO: ISA IRQ 0 -> GSI 0, conforming
            2, 10, 0, 9, 9, 0, 0, 0, 0x0D, 0,               // ISO: IRQ 9 -> GSI 9, level, active high
            4, 6, (byte) 0xFF, 0, 0, 1,                     // Local APIC NMI: all processors, LINT1
        };
        assertArrayEquals(expected, entries);
    }

    @Test
    void madtUsesX2apicEntriesFromApicId255() {
        ByteBuffer m = le(AcpiTables.build(machine(300)).table("APIC").bytes());
        int at = 44 + 255 * 8;
        assertEquals(0, m.get(at - 8));                     // APIC id 254: Local APIC
        assertEquals(254, m.get(at - 8 + 3) & 0xFF);
        for (int id = 255; id < 300; id++, at += 16) {
            assertEquals(9, m.get(at));                     // Processor Local x2APIC
            assertEquals(16, m.get(at + 1));
            assertEquals(id, m.getInt(at + 4));             // x2APIC id
            assertEquals(1, m.getInt(at + 8));              // enabled
            assertEquals(id, m.getInt(at + 12));            // UID
        }
        at += 12 + 10 + 10 + 6;                             // I/O APIC, two overrides, Local APIC NMI
        assertEquals(0xA, m.get(at));                       // Local x2APIC NMI
        assertEquals(12, m.get(at + 1));
        assertEquals(-1, m.getInt(at + 4));                 // all processors
        assertEquals(1, m.get(at + 8));                     // LINT1
        assertEquals(m.capacity(), at + 12);
    }

    @Test
    void mcfgHasOneAllocation() {
        ByteBuffer m = le(AcpiTables.build(machine(1)).table("MCFG").bytes());
        assertEquals(60, m.capacity());
        assertEquals(0, m.getLong(36));                     // reserved
        assertEquals(0xE000_0000L, m.getLong(44));          // base address
        assertEquals(0, m.getShort(52));                    // segment
        assertEquals(0, m.get(54));                         // start bus
        assertEquals((byte) 0xFF, m.get(55));               // end bus
        assertEquals(0, m.getInt(56));
    }

    @Test
    void dsdtAmlIsTheEncodersOwn() {
        AcpiMachine m = machine(2);
        byte[] dsdt = AcpiTables.build(m).table("DSDT").bytes();
        assertArrayEquals(Dsdt.aml(m), Arrays.copyOfRange(dsdt, 36, dsdt.length));
        // Name (\_S5, Package () {5, 5, 0, 0}) comes first.
        assertArrayEquals(new byte[] {0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, 5, 0x0A, 5, 0, 0},
                Arrays.copyOfRange(dsdt, 36, 36 + 15));
    }

    @Test
    void machineIsChecked() {
        assertThrows(IllegalArgumentException.class, () -> AcpiMachine.pc(0, PM, 0xE000_0000L, MMIO32, MMIO64, routes()));
        // The 32-bit window must not cover the ECAM window.
        assertThrows(IllegalArgumentException.class, () -> AcpiMachine.pc(1, PM, 0xE000_0000L,
                new AcpiMachine.Window(0xC000_0000L, 0x3EC0_0000L), MMIO64, routes()));
        assertThrows(IllegalArgumentException.class, () -> AcpiMachine.pc(1, PM, 0xF800_0000L, MMIO32, MMIO64, routes()));
        assertThrows(IllegalArgumentException.class, () -> AcpiMachine.pc(1, PM, 0xE000_0000L, MMIO32, MMIO64,
                List.of(new MpTable.InterruptSource(0, 1, 5, 16))));
        AcpiMachine m = machine(1);
        assertEquals(new AcpiMachine.Window(0xE000_0000L, 256L << 20), m.ecamWindow());
    }
}
