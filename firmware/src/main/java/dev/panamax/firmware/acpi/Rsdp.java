package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Root System Description Pointer, ACPI 2.0+ form (ACPI 6.5, 5.2.5.3, table 5.3), 36 bytes:
 * <pre>
 *   0  "RSD PTR " (8)   8  Checksum (1, over bytes 0..19)   9  OEMID (6)   15 Revision (1) = 2
 *   16 RsdtAddress (4) = 0   20 Length (4) = 36   24 XsdtAddress (8)   32 Extended Checksum (1, over all 36)
 *   33 Reserved (3)
 * </pre>
 * Panamax has no RSDT: a revision-2 RSDP leads the OS to the XSDT (5.2.5.3: "the XSDT ... must be used"). An OS
 * finds the RSDP by scanning 0xE0000..0xFFFFF on 16-byte boundaries (5.2.5.1) or in boot_params.acpi_rsdp_addr.
 */
public final class Rsdp {
    private Rsdp() {
    }

    /** Size of the ACPI 2.0+ RSDP, bytes. */
    public static final int SIZE = 36;
    /** Bytes the first checksum covers (the ACPI 1.0 structure). */
    public static final int V1_SIZE = 20;
    /** Offset of Checksum. */
    public static final int CHECKSUM = 8;
    /** Offset of Revision. */
    public static final int REVISION = 15;
    /** Offset of RsdtAddress. */
    public static final int RSDT_ADDRESS = 16;
    /** Offset of Length. */
    public static final int LENGTH = 20;
    /** Offset of XsdtAddress. */
    public static final int XSDT_ADDRESS = 24;
    /** Offset of Extended Checksum. */
    public static final int EXTENDED_CHECKSUM = 32;
    /** Required alignment: the OS scans 16-byte boundaries. */
    public static final int ALIGNMENT = 16;

    /**
     * @param xsdtAddress guest-physical address of the XSDT
     * @return the 36-byte RSDP with both checksums set
     */
    public static byte[] build(long xsdtAddress) {
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        AcpiTable.putAscii(b, "RSD PTR ", 8);
        b.put((byte) 0);
        AcpiTable.putAscii(b, AcpiTable.OEM_ID, 6);
        b.put((byte) 2);
        b.putInt(0);
        b.putInt(SIZE);
        b.putLong(xsdtAddress);
        byte[] t = b.array();
        t[CHECKSUM] = (byte) -AcpiTable.sum8(t, 0, V1_SIZE);
        t[EXTENDED_CHECKSUM] = (byte) -AcpiTable.sum8(t, 0, SIZE);
        return t;
    }
}
