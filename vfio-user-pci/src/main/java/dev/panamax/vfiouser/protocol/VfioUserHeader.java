package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

/**
 * The 16-byte header that starts every vfio-user message (spec, "Header"), little-endian:
 * <pre>
 *   offset 0  u16 Message ID   (echoed in the reply)
 *   offset 2  u16 Command      ({@link VfioUserCommand})
 *   offset 4  u32 Message size (bytes, header included)
 *   offset 8  u32 Flags        (bits 0-3 Type: 0 command, 1 reply; bit 4 No_reply; bit 5 Error)
 *   offset 12 u32 Error        (errno, valid in a reply with the Error bit)
 * </pre>
 *
 * @param messageId   0..65535
 * @param command     the command
 * @param messageSize bytes of the whole message, header included (at least {@link #SIZE})
 * @param flags       the Flags word
 * @param error       the errno of an error reply, else 0
 */
public record VfioUserHeader(int messageId, VfioUserCommand command, int messageSize, int flags, int error) {
    /** Bytes of the header. */
    public static final int SIZE = 16;
    /** Flags bits 0-3: the message type. */
    public static final int TYPE_MASK = 0xF;
    public static final int TYPE_COMMAND = 0x0;
    public static final int TYPE_REPLY = 0x1;
    /** Flags bit 4: the command wants no reply. */
    public static final int FLAG_NO_REPLY = 0x10;
    /** Flags bit 5: the reply reports an error in the Error field. */
    public static final int FLAG_ERROR = 0x20;
    private static final int KNOWN_FLAGS = TYPE_MASK | FLAG_NO_REPLY | FLAG_ERROR;

    public VfioUserHeader {
        if (messageId < 0 || messageId > 0xFFFF) {
            throw new IllegalArgumentException("message ID " + messageId + " is not a u16");
        }
        if (messageSize < SIZE) {
            throw new IllegalArgumentException("message size " + messageSize + " is below the 16-byte header");
        }
    }

    /** A command header for a payload of {@code payloadSize} bytes. */
    public static VfioUserHeader command(int messageId, VfioUserCommand command, int payloadSize, boolean noReply) {
        return new VfioUserHeader(messageId, command, SIZE + payloadSize, TYPE_COMMAND | (noReply ? FLAG_NO_REPLY : 0), 0);
    }

    /** A reply header for a payload of {@code payloadSize} bytes. */
    public static VfioUserHeader reply(int messageId, VfioUserCommand command, int payloadSize) {
        return new VfioUserHeader(messageId, command, SIZE + payloadSize, TYPE_REPLY, 0);
    }

    /** An error reply: the header alone ("If an error occurs, the reply message must only include the reply header"). */
    public static VfioUserHeader errorReply(int messageId, VfioUserCommand command, int errno) {
        return new VfioUserHeader(messageId, command, SIZE, TYPE_REPLY | FLAG_ERROR, errno);
    }

    /** @return true when the Type bits say reply */
    public boolean isReply() {
        return (flags & TYPE_MASK) == TYPE_REPLY;
    }

    /** @return true when the No_reply bit is set */
    public boolean noReply() {
        return (flags & FLAG_NO_REPLY) != 0;
    }

    /** @return true when the Error bit is set */
    public boolean isError() {
        return (flags & FLAG_ERROR) != 0;
    }

    /** @return bytes after the header */
    public int payloadSize() {
        return messageSize - SIZE;
    }

    /** Writes the 16 bytes. */
    public void encode(ByteBuf out) {
        out.writeShortLE(messageId);
        out.writeShortLE(command.code());
        out.writeIntLE(messageSize);
        out.writeIntLE(flags);
        out.writeIntLE(error);
    }

    /**
     * Reads and checks 16 bytes.
     *
     * @param maxMessageSize the largest Message size accepted (bytes, header included)
     * @throws VfioUserProtocolException EINVAL when fewer than 16 bytes are readable, the size is
     *         below 16 or the flags are inconsistent; E2BIG when the size exceeds {@code maxMessageSize};
     *         ENOSYS for an unknown command
     */
    public static VfioUserHeader decode(ByteBuf in, long maxMessageSize) {
        if (in.readableBytes() < SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "vfio-user header truncated: " + in.readableBytes() + " of 16 bytes");
        }
        int id = in.readUnsignedShortLE();
        int code = in.readUnsignedShortLE();
        long size = in.readUnsignedIntLE();
        int flags = in.readIntLE();
        int error = in.readIntLE();
        VfioUserCommand command;
        try {
            checkSize(size, maxMessageSize);
            command = VfioUserCommand.of(code);
        } catch (VfioUserProtocolException e) {
            throw e.at(id, code);
        }
        VfioUserHeader header = new VfioUserHeader(id, command, (int) size, flags, error);
        try {
            header.checkFlags();
        } catch (VfioUserProtocolException e) {
            throw e.at(id, code);
        }
        return header;
    }

    /**
     * Checks a Message size field.
     *
     * @throws VfioUserProtocolException EINVAL below 16, E2BIG above {@code maxMessageSize}
     */
    public static void checkSize(long size, long maxMessageSize) {
        if (size < SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user message size " + size + " is below the 16-byte header");
        }
        if (size > maxMessageSize) {
            throw new VfioUserProtocolException(Errno.E2BIG,
                    "vfio-user message size " + size + " exceeds the limit of " + maxMessageSize + " bytes");
        }
    }

    /**
     * Checks the Flags word: Type is command or reply; bits above 5 are not defined and must be 0;
     * No_reply only in a command; Error only in a reply, and then the message is the header alone
     * (spec, "Header").
     *
     * @throws VfioUserProtocolException EINVAL naming the bad flag
     */
    public void checkFlags() {
        int type = flags & TYPE_MASK;
        if (type != TYPE_COMMAND && type != TYPE_REPLY) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": message type " + type + " is neither command (0) nor reply (1)");
        }
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, String.format("vfio-user %s: undefined flag bits 0x%x", command, flags & ~KNOWN_FLAGS));
        }
        if (type == TYPE_REPLY && noReply()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": No_reply set in a reply");
        }
        if (type == TYPE_COMMAND && isError()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": Error set in a command");
        }
        if (isError() && messageSize != SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": error reply of " + messageSize + " bytes, must be the 16-byte header alone");
        }
    }
}
