package dev.panamax.firmware.acpi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every table through ACPICA's disassembler: {@code iasl -d} must decode it with exit code 0 and no error, warning
 * or complaint (iasl prints "Firmware Warning (ACPI): Incorrect checksum ..." and writes "Incorrect checksum" or
 * "**** ..." remarks into the .dsl), and the .dsl it writes must compile back ({@code iasl}) to the same bytes.
 * The RSDP, which iasl does not disassemble from a raw file, is checked against iasl's data table compiler instead.
 */
class AcpiIaslTest {
    @TempDir
    Path dir;

    /** Lines of a .dsl that report a defect in the table. */
    private static List<String> complaints(String dsl) {
        return dsl.lines().filter(l -> l.matches("(?i).*(error|warning|incorrect|invalid|unknown|\\*\\*\\*\\*).*"))
                .toList();
    }

    private static String fileName(AcpiTables.Table t) {
        return t.signature().equals("RSD PTR ") ? "RSDP" : t.signature();
    }

    private void writeTables(AcpiTables tables) throws Exception {
        for (AcpiTables.Table t : tables.tables()) {
            Files.write(dir.resolve(fileName(t) + ".dat"), t.bytes());
        }
    }

    @Test
    void everyTableDisassemblesAndRecompilesToTheSameBytes() throws Exception {
        for (int cpus : new int[] {1, 4, 300}) {
            AcpiTables tables = AcpiTables.build(AcpiTablesTest.machine(cpus));
            writeTables(tables);
            for (AcpiTables.Table t : tables.tables()) {
                if (t.signature().equals("RSD PTR ")) {
                    continue;
                }
                String name = fileName(t);
                Iasl.run(dir, "-d", name + ".dat").assertClean(cpus + " CPUs: iasl -d " + name);
                String dsl = Files.readString(dir.resolve(name + ".dsl"));
                assertEquals(List.of(), complaints(dsl), cpus + " CPUs: " + name + ".dsl:\n" + dsl);
                // Named-reference optimization off: \_S5 stays as written at the root.
                Iasl.run(dir, "-on", name + ".dsl").assertClean(cpus + " CPUs: iasl " + name + ".dsl");
                byte[] again = Files.readAllBytes(dir.resolve(name + ".aml"));
                assertEquals(hex(comparable(t.bytes())), hex(comparable(again)), cpus + " CPUs: " + name + " recompiled");
            }
        }
    }

    @Test
    void theWholeSetDisassemblesInOneRun() throws Exception {
        AcpiTables tables = AcpiTables.build(AcpiTablesTest.machine(2));
        writeTables(tables);
        var args = tables.tables().stream().filter(t -> !t.signature().equals("RSD PTR "))
                .map(t -> fileName(t) + ".dat").toList();
        var all = new java.util.ArrayList<>(List.of("-d"));
        all.addAll(args);
        Iasl.Result r = Iasl.run(dir, all.toArray(String[]::new)).assertClean("iasl -d of all tables");
        assertTrue(r.output().contains("ACPI: DSDT 0x0000000000000000 "), r.output());
        // The DSDT, decoded with the others as external references: nothing unresolved.
        var e = new java.util.ArrayList<>(List.of("-e"));
        e.addAll(args.stream().filter(a -> !a.equals("DSDT.dat")).toList());
        e.addAll(List.of("-d", "DSDT.dat"));
        Iasl.run(dir, e.toArray(String[]::new)).assertClean("iasl -e ... -d DSDT.dat");
        String dsl = Files.readString(dir.resolve("DSDT.dsl"));
        assertEquals(List.of(), complaints(dsl));
        for (String expected : List.of(
                "Name (\\_S5, Package (0x04)",
                "Device (PCI0)",
                "Name (_HID, EisaId (\"PNP0A08\") /* PCI Express Bus */)",
                "Name (_CID, EisaId (\"PNP0A03\") /* PCI Bus */)",
                "Name (_SEG, Zero)",
                "Name (_BBN, Zero)",
                "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
                "0x0CF7,             // Range Maximum",
                "0x0D00,             // Range Minimum",
                "0xDFFFFFFF,         // Range Maximum",
                "0x0000007FFFFFFFFF, // Range Maximum",
                "Name (_PRT, Package (0x0C)",
                "0x0003FFFF,",
                "Name (_HID, EisaId (\"PNP0C02\") /* PNP Motherboard Resources */)",
                "0xE0000000,         // Address Base",
                "0x10000000,         // Address Length",
                "Name (_HID, EisaId (\"PNP0501\") /* 16550A-compatible COM Serial Port */)",
                "Name (_HID, EisaId (\"PNP0B00\") /* AT Real-Time Clock */)",
                "Name (_HID, EisaId (\"PNP0303\") /* IBM Enhanced Keyboard (101/102-key, PS/2 Mouse) */)",
                "Name (_HID, EisaId (\"PNP0F13\") /* PS/2 Mouse */)",
                "IRQNoFlags ()\n                    {12}",
                "Device (C001)",
                "Name (_HID, \"ACPI0007\" /* Processor Device */)")) {
            assertTrue(dsl.contains(expected), "DSDT.dsl lacks " + expected + ":\n" + dsl);
        }
    }

    @Test
    void rsdpMatchesIaslsDataTableCompiler() throws Exception {
        AcpiTables tables = AcpiTables.build(AcpiTablesTest.machine(1));
        long xsdt = tables.table("XSDT").address();
        // iasl -T RSDP's template with Panamax's values; iasl computes both checksums itself.
        Files.writeString(dir.resolve("rsdp.asl"), String.join("\n",
                "[0008]                          Signature : \"RSD PTR \"",
                "[0001]                           Checksum : 00",
                "[0006]                             Oem ID : \"PANAMX\"",
                "[0001]                           Revision : 02",
                "[0004]                       RSDT Address : 00000000",
                "[0004]                             Length : 00000024",
                String.format("[0008]                       XSDT Address : %016X", xsdt),
                "[0001]                  Extended Checksum : 00",
                "[0003]                           Reserved : 000000", ""));
        Iasl.run(dir, "rsdp.asl").assertClean("iasl rsdp.asl");
        assertEquals(hex(Files.readAllBytes(dir.resolve("rsdp.aml"))), hex(tables.tables().getFirst().bytes()));
    }

    /** The table less what iasl writes differently when it compiles: the checksum and the creator id/revision. */
    private static byte[] comparable(byte[] table) {
        byte[] b = Arrays.copyOf(table, table.length);
        if (!new String(b, 0, 4).equals("FACS")) {
            b[AcpiTable.CHECKSUM] = 0;
            Arrays.fill(b, 28, 36, (byte) 0);
        }
        return b;
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }
}
