package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Firmware ACPI Control Structure (ACPI 6.5, 5.2.10, table 5.14), 64 bytes, 64-byte aligned, no checksum:
 * <pre>
 *   0  "FACS"   4  Length = 64   8  Hardware Signature   12 Firmware Waking Vector   16 Global Lock   20 Flags
 *   24 X Firmware Waking Vector (8)   32 Version = 2   33 Reserved (3)   36 OSPM Flags   40 Reserved (24)
 * </pre>
 * Panamax supports no sleep state but S5, so the waking vectors stay 0, and no global lock (Flags 0). The FADT
 * must point at a FACS unless the platform is hardware-reduced.
 */
public final class Facs {
    private Facs() {
    }

    /** Size of the FACS, bytes. */
    public static final int SIZE = 64;
    /** Required alignment (5.2.10: "64-byte aligned"). */
    public static final int ALIGNMENT = 64;
    /** Offset of the Version field. */
    public static final int VERSION = 32;

    /** @return the 64-byte FACS */
    public static byte[] build() {
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        AcpiTable.putAscii(b, "FACS", 4);
        b.putInt(SIZE);
        b.put(VERSION, (byte) 2);
        return b.array();
    }
}
