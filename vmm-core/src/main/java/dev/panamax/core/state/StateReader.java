package dev.panamax.core.state;

import java.util.Arrays;

/**
 * Reads a state {@link StateWriter} wrote, trusting nothing: the header's tag must be the expected one and its version
 * between 1 and the newest this build knows; every read checks that the bytes are there (lengths are taken unsigned
 * and compared with what remains, never used to allocate first); {@link #end()} refuses trailing bytes. Every failure
 * is a {@link StateException} whose message starts with the state's name, e.g.
 * {@code "com1 state: truncated at byte 12 (2 bytes needed, 0 left)"}.
 *
 * <p>A model parses the whole state into locals with a reader, checks {@link #end()}, and only then assigns its
 * fields, so that a bad state leaves it unchanged ({@link Snapshottable#restoreState}).
 */
public final class StateReader {
    private final String name;
    private final byte[] state;
    private final int version;
    private int position;

    /**
     * Reads and checks the header.
     *
     * @param name       the state's name for messages, e.g. "com1"
     * @param state      the bytes; null is refused like an empty array
     * @param tag        the tag the format has (4 printable ASCII characters)
     * @param maxVersion the newest version this build reads; versions 1..maxVersion are accepted
     * @throws StateException if the state is shorter than the header, has another tag, or a version outside
     *                        1..maxVersion
     */
    public StateReader(String name, byte[] state, String tag, int maxVersion) {
        this.name = name;
        byte[] expected = StateWriter.checkTag(tag);
        if (state == null) {
            throw invalid("no state");
        }
        this.state = state;
        byte[] actual = raw(4);
        if (!Arrays.equals(actual, expected)) {
            throw invalid("tag " + printable(actual) + " is not " + tag);
        }
        int v = u16();
        if (v == 0) {
            throw invalid("version 0 is not a version");
        }
        if (v > maxVersion) {
            throw invalid("version " + v + " is newer than this build's " + maxVersion);
        }
        this.version = v;
    }

    /** @return the version in the header, 1..maxVersion */
    public int version() {
        return version;
    }

    /** @return the offset of the next byte to read */
    public int position() {
        return position;
    }

    /** @return bytes left to read */
    public int remaining() {
        return state.length - position;
    }

    /** @return the next byte, 0..255 */
    public int u8() {
        need(1);
        return state[position++] & 0xFF;
    }

    /** @return the next byte, which must be 0 (false) or 1 (true) */
    public boolean bool(String field) {
        int at = position;
        int v = u8();
        if (v > 1) {
            throw invalid(field + " is " + v + " at byte " + at + ", not 0 or 1");
        }
        return v == 1;
    }

    /** @return the next le16, 0..65535 */
    public int u16() {
        need(2);
        int v = (state[position] & 0xFF) | (state[position + 1] & 0xFF) << 8;
        position += 2;
        return v;
    }

    /** @return the next le32, as the int with those bits (use {@link Integer#toUnsignedLong} for its value) */
    public int u32() {
        need(4);
        int v = 0;
        for (int i = 0; i < 4; i++) {
            v |= (state[position + i] & 0xFF) << (8 * i);
        }
        position += 4;
        return v;
    }

    /** @return the next le64 */
    public long u64() {
        long low = Integer.toUnsignedLong(u32());
        return low | (long) u32() << 32;
    }

    /**
     * @param maxLength the most bytes the field may hold
     * @return the bytes of the next length-prefixed field (le32 length, unsigned)
     * @throws StateException if the length exceeds {@code maxLength} or what remains
     */
    public byte[] bytes(String field, int maxLength) {
        int at = position;
        long length = Integer.toUnsignedLong(u32());
        if (length > maxLength) {
            throw invalid(field + " is " + length + " bytes at byte " + at + ", more than its " + maxLength);
        }
        return raw((int) length);
    }

    /** @return the next {@code length} bytes: a field of fixed length */
    public byte[] raw(int length) {
        need(length);
        byte[] b = Arrays.copyOfRange(state, position, position + length);
        position += length;
        return b;
    }

    /**
     * Checks a value read against its range.
     *
     * @return {@code value}
     * @throws StateException naming {@code field} if it is outside {@code min..max}
     */
    public long check(String field, long value, long min, long max) {
        if (value < min || value > max) {
            throw invalid(String.format("%s is %d (0x%x), not %d..%d", field, value, value, min, max));
        }
        return value;
    }

    /**
     * Ends the reading.
     *
     * @throws StateException if bytes remain
     */
    public void end() {
        if (position != state.length) {
            throw invalid(remaining() + " bytes of trailing garbage at byte " + position);
        }
    }

    /** @return a {@link StateException} whose message is "NAME state: {@code detail}", for the model's own checks */
    public StateException invalid(String detail) {
        return new StateException(name + " state: " + detail);
    }

    private void need(int n) {
        if (n < 0 || n > state.length - position) {
            throw invalid("truncated at byte " + position + " (" + n + " bytes needed, " + (state.length - position) + " left)");
        }
    }

    private static String printable(byte[] tag) {
        var sb = new StringBuilder("'");
        for (byte b : tag) {
            sb.append(b >= 0x20 && b <= 0x7E ? String.valueOf((char) b) : String.format("\\x%02x", b & 0xFF));
        }
        return sb.append('\'').toString();
    }
}
