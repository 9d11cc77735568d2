package dev.panamax.vfiouser.server;

/**
 * Splits a client's region access (any length: spec, "VFIO_USER_REGION_READ") into the naturally aligned
 * accesses a CPU makes to device registers: at each step the widest of {@code maxWidth}, ..., 2, 1 bytes that
 * is aligned to its width and ends within the access.
 */
final class NaturalAccesses {
    /** One register access: byte offset and width (1, 2, 4 or 8). */
    interface Step {
        void access(long offset, int width, int at);
    }

    private NaturalAccesses() {
    }

    /**
     * Calls {@code step} for each piece of {@code length} bytes at {@code offset}, in address order.
     *
     * @param maxWidth 4 or 8 bytes
     * @param step     gets the piece's offset, width and its position in the caller's buffer
     */
    static void split(long offset, int length, int maxWidth, Step step) {
        long end = offset + length;
        long at = offset;
        while (at < end) {
            int width = maxWidth;
            while (width > 1 && ((at & (width - 1)) != 0 || at + width > end)) {
                width >>= 1;
            }
            step.access(at, width, (int) (at - offset));
            at += width;
        }
    }

    /** @return {@code width} little-endian bytes of {@code b} from {@code at} */
    static long get(byte[] b, int at, int width) {
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[at + i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    /** Stores the low {@code width} bytes of {@code value} little-endian into {@code b} at {@code at}. */
    static void put(byte[] b, int at, int width, long value) {
        for (int i = 0; i < width; i++) {
            b[at + i] = (byte) (value >>> (8 * i));
        }
    }
}
