package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

/**
 * The System Description Table Header every ACPI table but the RSDP and FACS starts with (ACPI 6.5, 5.2.6,
 * table 5.4), 36 bytes:
 * <pre>
 *   0  Signature (4)   4  Length (4)   8  Revision (1)   9  Checksum (1)   10 OEMID (6)   16 OEM Table ID (8)
 *   24 OEM Revision (4)   28 Creator ID (4)   32 Creator Revision (4)
 * </pre>
 * The checksum makes the 8-bit sum of the whole table (Length bytes) zero. Panamax's tables carry OEMID
 * {@value #OEM_ID}, OEM Table ID "PANAMAX" plus the table's own suffix where there are several, creator id
 * {@value #CREATOR_ID} and creator revision 1.
 */
public final class AcpiTable {
    private AcpiTable() {
    }

    /** Size of the header, bytes. */
    public static final int HEADER_SIZE = 36;
    /** Offset of the Length field. */
    public static final int LENGTH = 4;
    /** Offset of the Revision field. */
    public static final int REVISION = 8;
    /** Offset of the Checksum field. */
    public static final int CHECKSUM = 9;
    /** OEMID of every Panamax table (6 characters). */
    public static final String OEM_ID = "PANAMX";
    /** OEM Table ID (8 characters, space-padded). */
    public static final String OEM_TABLE_ID = "PANAMAX";
    /** OEM Revision. */
    public static final int OEM_REVISION = 1;
    /** Creator ID: the vendor of the tool that made the table (4 characters). */
    public static final String CREATOR_ID = "PNMX";
    /** Creator Revision. */
    public static final int CREATOR_REVISION = 1;

    /**
     * A little-endian buffer of {@code length} bytes holding a header for a table of that length; the checksum is
     * 0 until {@link #finish}.
     *
     * @param signature four ASCII characters, e.g. "FACP"
     * @param length    the table's total length, header included, bytes
     * @param revision  the table's revision
     * @return the buffer, positioned after the header
     */
    static ByteBuffer start(String signature, int length, int revision) {
        if (signature.length() != 4 || length < HEADER_SIZE) {
            throw new IllegalArgumentException("ACPI table '" + signature + "' of " + length + " bytes");
        }
        ByteBuffer b = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        putAscii(b, signature, 4);
        b.putInt(length);
        b.put((byte) revision);
        b.put((byte) 0);
        putAscii(b, OEM_ID, 6);
        putAscii(b, OEM_TABLE_ID, 8);
        b.putInt(OEM_REVISION);
        putAscii(b, CREATOR_ID, 4);
        b.putInt(CREATOR_REVISION);
        return b;
    }

    /**
     * A table of header and {@code body}, with its checksum set.
     *
     * @param signature four ASCII characters
     * @param revision  the table's revision
     * @param body      what follows the header (for a DSDT, the AML)
     * @return the table's bytes
     */
    static byte[] of(String signature, int revision, byte[] body) {
        ByteBuffer b = start(signature, HEADER_SIZE + body.length, revision);
        b.put(body);
        return finish(b);
    }

    /**
     * Sets the checksum byte of a table built in {@code b} (all of it, whatever the position).
     *
     * @return the table's bytes
     */
    static byte[] finish(ByteBuffer b) {
        byte[] t = b.array();
        t[CHECKSUM] = 0;
        t[CHECKSUM] = (byte) -sum8(t, 0, t.length);
        return t;
    }

    /**
     * @return the 8-bit sum of {@code length} bytes of {@code b} from {@code offset}; a table is valid when the sum
     *         over it is 0
     */
    public static int sum8(byte[] b, int offset, int length) {
        int sum = 0;
        for (int i = offset; i < offset + length; i++) {
            sum += b[i];
        }
        return sum & 0xFF;
    }

    /** Writes {@code s} as {@code width} ASCII bytes, space-padded. */
    static void putAscii(ByteBuffer b, String s, int width) {
        byte[] a = s.getBytes(StandardCharsets.US_ASCII);
        if (a.length > width) {
            throw new IllegalArgumentException("'" + s + "' is longer than " + width + " characters");
        }
        for (int i = 0; i < width; i++) {
            b.put(i < a.length ? a[i] : (byte) ' ');
        }
    }
}
