package dev.panamax.firmware.acpi;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * The set of ACPI tables Panamax gives a guest, laid out for guest RAM in the BIOS area below the MP table:
 * <pre>
 *   0xE0000   RSDP (36 bytes; 16-byte aligned, where an OS scans for it, ACPI 6.5 5.2.5.1)
 *   0xE0040   FACS (64 bytes, 64-byte aligned, 5.2.10)
 *   0xE0080   XSDT -&gt; FADT, MADT, MCFG
 *   then      FADT -&gt; FACS, DSDT;  MADT;  MCFG;  DSDT    (each 16-byte aligned)
 *   ..0xEFFFF end of the room ({@link #LIMIT}); the MP table follows at 0xF0000
 * </pre>
 *
 * @param machine what the tables describe
 * @param tables  the tables in address order, the RSDP first
 */
public record AcpiTables(AcpiMachine machine, List<Table> tables) {
    /** Guest-physical address of the RSDP: the start of the BIOS area. */
    public static final long RSDP_ADDRESS = 0xE0000;
    /** End (exclusive) of the room for the tables: the MP table's address. */
    public static final long LIMIT = 0xF0000;
    /** Alignment of the tables after the FACS. */
    public static final int TABLE_ALIGNMENT = 16;

    /**
     * One table in guest memory.
     *
     * @param signature its signature ("RSD PTR " for the RSDP)
     * @param address   guest-physical address
     * @param bytes     its contents
     */
    public record Table(String signature, long address, byte[] bytes) {
        /** @return the guest-physical address past its last byte */
        public long end() {
            return address + bytes.length;
        }
    }

    /** Copies the list. */
    public AcpiTables {
        tables = List.copyOf(tables);
    }

    /**
     * Builds and lays out the RSDP, XSDT, FADT, FACS, MADT, MCFG and DSDT of {@code m}.
     *
     * @param m the machine
     * @return the tables with their addresses
     * @throws IllegalArgumentException if they do not fit below {@link #LIMIT} (a DSDT for thousands of CPUs)
     */
    public static AcpiTables build(AcpiMachine m) {
        long facs = align(RSDP_ADDRESS + Rsdp.SIZE, Facs.ALIGNMENT);
        long xsdt = align(facs + Facs.SIZE, TABLE_ALIGNMENT);
        int xsdtSize = AcpiTable.HEADER_SIZE + 3 * 8;
        byte[] madt = Madt.build(m);
        byte[] mcfg = Mcfg.build(m);
        byte[] dsdt = Dsdt.build(m);
        long fadtAt = align(xsdt + xsdtSize, TABLE_ALIGNMENT);
        long madtAt = align(fadtAt + Fadt.SIZE, TABLE_ALIGNMENT);
        long mcfgAt = align(madtAt + madt.length, TABLE_ALIGNMENT);
        long dsdtAt = align(mcfgAt + mcfg.length, TABLE_ALIGNMENT);
        if (dsdtAt + dsdt.length > LIMIT) {
            throw new IllegalArgumentException(String.format("ACPI tables end at 0x%X, past 0x%X (%d CPUs)",
                    dsdtAt + dsdt.length, LIMIT, m.cpus()));
        }
        var list = new ArrayList<Table>();
        list.add(new Table("RSD PTR ", RSDP_ADDRESS, Rsdp.build(xsdt)));
        list.add(new Table("FACS", facs, Facs.build()));
        list.add(new Table("XSDT", xsdt, Xsdt.build(List.of(fadtAt, madtAt, mcfgAt))));
        list.add(new Table("FACP", fadtAt, Fadt.build(m, facs, dsdtAt)));
        list.add(new Table("APIC", madtAt, madt));
        list.add(new Table("MCFG", mcfgAt, mcfg));
        list.add(new Table("DSDT", dsdtAt, dsdt));
        return new AcpiTables(m, list);
    }

    /** @return the RSDP's guest-physical address, for {@code boot_params.acpi_rsdp_addr} */
    public long rsdpAddress() {
        return tables.getFirst().address();
    }

    /** @return the table with this signature */
    public Table table(String signature) {
        return tables.stream().filter(t -> t.signature().equals(signature)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no ACPI table " + signature));
    }

    /**
     * Zeroes {@link #RSDP_ADDRESS}..{@link #LIMIT} and writes the tables there.
     *
     * @param lowRam guest RAM, offset 0 = guest-physical 0, at least 1 MiB
     * @return bytes from the RSDP to the end of the last table
     */
    public long writeTo(MemorySegment lowRam) {
        lowRam.asSlice(RSDP_ADDRESS, LIMIT - RSDP_ADDRESS).fill((byte) 0);
        for (Table t : tables) {
            MemorySegment.copy(t.bytes(), 0, lowRam, ValueLayout.JAVA_BYTE, t.address(), t.bytes().length);
        }
        return tables.getLast().end() - RSDP_ADDRESS;
    }

    private static long align(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }
}
