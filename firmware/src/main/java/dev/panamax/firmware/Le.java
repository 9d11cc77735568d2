package dev.panamax.firmware;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Little-endian, unaligned accessors for guest memory and file bytes: the x86 tables are packed
 * structs in little-endian order, so every field goes through here.
 */
final class Le {
    private Le() {
    }

    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static int u8(MemorySegment m, long offset) {
        return Byte.toUnsignedInt(m.get(ValueLayout.JAVA_BYTE, offset));
    }

    static int u16(MemorySegment m, long offset) {
        return Short.toUnsignedInt(m.get(U16, offset));
    }

    static long u32(MemorySegment m, long offset) {
        return Integer.toUnsignedLong(m.get(U32, offset));
    }

    static long u64(MemorySegment m, long offset) {
        return m.get(U64, offset);
    }

    static void put8(MemorySegment m, long offset, int value) {
        m.set(ValueLayout.JAVA_BYTE, offset, (byte) value);
    }

    static void put16(MemorySegment m, long offset, int value) {
        m.set(U16, offset, (short) value);
    }

    static void put32(MemorySegment m, long offset, long value) {
        m.set(U32, offset, (int) value);
    }

    static void put64(MemorySegment m, long offset, long value) {
        m.set(U64, offset, value);
    }

    /** The 8-bit sum of {@code length} bytes from {@code offset}; an MP structure is valid when it is 0. */
    static int sum8(MemorySegment m, long offset, long length) {
        int sum = 0;
        for (long i = 0; i < length; i++) {
            sum += m.get(ValueLayout.JAVA_BYTE, offset + i);
        }
        return sum & 0xFF;
    }
}
