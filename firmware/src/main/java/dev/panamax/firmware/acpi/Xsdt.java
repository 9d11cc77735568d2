package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;
import java.util.List;

/**
 * The Extended System Description Table (ACPI 6.5, 5.2.8, table 5.6): the header, signature "XSDT", revision 1,
 * then one 64-bit guest-physical address per table it points at (Panamax: FADT, MADT, MCFG), from offset 36.
 */
public final class Xsdt {
    private Xsdt() {
    }

    /** Revision of the XSDT. */
    public static final int REVISION = 1;

    /**
     * @param tableAddresses guest-physical addresses of the tables
     * @return the table, 36 + 8n bytes, checksum set
     */
    public static byte[] build(List<Long> tableAddresses) {
        ByteBuffer b = AcpiTable.start("XSDT", AcpiTable.HEADER_SIZE + 8 * tableAddresses.size(), REVISION);
        for (long a : tableAddresses) {
            b.putLong(a);
        }
        return AcpiTable.finish(b);
    }
}
