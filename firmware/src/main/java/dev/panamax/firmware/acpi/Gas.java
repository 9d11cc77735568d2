package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Generic Address Structure (ACPI 6.5, 5.2.3.2, table 5.1), 12 bytes: Address Space ID (1), Register Bit
 * Width (1), Register Bit Offset (1), Access Size (1), Address (8).
 */
public final class Gas {
    private Gas() {
    }

    /** Size of a GAS, bytes. */
    public static final int SIZE = 12;
    /** Address Space ID 0: system memory. */
    public static final int SYSTEM_MEMORY = 0;
    /** Address Space ID 1: system I/O. */
    public static final int SYSTEM_IO = 1;
    /** Access Size 0: undefined (legacy reasons; the register's own width applies). */
    public static final int UNDEFINED_ACCESS = 0;
    /** Access Size 1: byte access. */
    public static final int BYTE_ACCESS = 1;
    /** Access Size 2: word access. */
    public static final int WORD_ACCESS = 2;

    /**
     * @param space      the Address Space ID
     * @param bitWidth   the register's size in bits
     * @param bitOffset  the register's bit offset at the address
     * @param accessSize the Access Size code
     * @param address    the register's address in that space
     * @return the 12 bytes
     */
    public static byte[] encode(int space, int bitWidth, int bitOffset, int accessSize, long address) {
        return ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN).put((byte) space).put((byte) bitWidth)
                .put((byte) bitOffset).put((byte) accessSize).putLong(address).array();
    }
}
