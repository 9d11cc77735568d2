package dev.panamax.core.state;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Writes a device model's state in the snapshot's common shape: a header of a 4-byte ASCII tag (what the bytes
 * are, e.g. "UART") and a little-endian u16 version (1 and up), then the model's fields, each little-endian, in the
 * order the model documents. {@link StateReader} reads it back and checks every length.
 *
 * <pre>
 *   0 tag (4 ASCII bytes)   4 le16 version   6 fields: u8, le16, le32, le64, bytes = le32 length + that many bytes
 * </pre>
 *
 * Not thread-safe: one writer per {@link Snapshottable#saveState()} call.
 */
public final class StateWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    /**
     * Starts a state with its header.
     *
     * @param tag     exactly 4 printable ASCII characters naming the format
     * @param version the format's version, 1..65535
     * @throws IllegalArgumentException for another tag or version
     */
    public StateWriter(String tag, int version) {
        byte[] t = checkTag(tag);
        if (version < 1 || version > 0xFFFF) {
            throw new IllegalArgumentException("state version " + version + " is not 1..65535");
        }
        out.writeBytes(t);
        u16(version);
    }

    static byte[] checkTag(String tag) {
        if (tag == null || tag.length() != 4 || !tag.chars().allMatch(c -> c >= 0x21 && c <= 0x7E)) {
            throw new IllegalArgumentException("state tag " + tag + " is not 4 printable ASCII characters");
        }
        return tag.getBytes(StandardCharsets.US_ASCII);
    }

    /** Appends the low 8 bits of {@code value}. */
    public StateWriter u8(int value) {
        out.write(value & 0xFF);
        return this;
    }

    /** Appends 1 for true, 0 for false (one byte). */
    public StateWriter bool(boolean value) {
        return u8(value ? 1 : 0);
    }

    /** Appends the low 16 bits of {@code value}, little-endian. */
    public StateWriter u16(int value) {
        return u8(value).u8(value >>> 8);
    }

    /** Appends the 32 bits of {@code value}, little-endian. */
    public StateWriter u32(int value) {
        return u16(value).u16(value >>> 16);
    }

    /** Appends the 64 bits of {@code value}, little-endian. */
    public StateWriter u64(long value) {
        return u32((int) value).u32((int) (value >>> 32));
    }

    /** Appends {@code bytes} as a le32 length and the bytes. */
    public StateWriter bytes(byte[] bytes) {
        u32(bytes.length);
        out.writeBytes(bytes);
        return this;
    }

    /** Appends {@code bytes} without a length: a field whose length the format fixes. */
    public StateWriter raw(byte[] bytes) {
        out.writeBytes(bytes);
        return this;
    }

    /** @return the state written so far, header included */
    public byte[] toByteArray() {
        return out.toByteArray();
    }
}
