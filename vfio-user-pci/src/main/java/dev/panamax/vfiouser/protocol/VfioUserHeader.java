package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_header;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_ERROR;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_NO_REPLY;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_TYPE_COMMAND;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_TYPE_MASK;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_TYPE_REPLY;

/**
 * The 16-byte header that starts every vfio-user message (spec, "Header"): {@code struct vfio_user_header}
 * ({@link vfio_user_header}): msg_id (echoed in the reply), cmd ({@link VfioUserCommand}), msg_size (bytes, header
 * included), flags (bits 0-3 type {@code VFIO_USER_F_TYPE_COMMAND}/{@code _REPLY}, {@code VFIO_USER_F_NO_REPLY},
 * {@code VFIO_USER_F_ERROR}, of {@code vfio_user_h}), error_no (errno, valid in a reply with the error bit).
 *
 * @param messageId   0..65535
 * @param command     the command
 * @param messageSize bytes of the whole message, header included (at least {@link #SIZE})
 * @param flags       the Flags word
 * @param error       the errno of an error reply, else 0
 */
public record VfioUserHeader(int messageId, VfioUserCommand command, int messageSize, int flags, int error) {
    /** Bytes of the header: {@code sizeof(struct vfio_user_header)}. */
    public static final int SIZE = (int) vfio_user_header.sizeof();
    private static final int KNOWN_FLAGS = VFIO_USER_F_TYPE_MASK() | VFIO_USER_F_NO_REPLY() | VFIO_USER_F_ERROR();

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
        return new VfioUserHeader(messageId, command, SIZE + payloadSize, VFIO_USER_F_TYPE_COMMAND() | (noReply ? VFIO_USER_F_NO_REPLY() : 0), 0);
    }

    /** A reply header for a payload of {@code payloadSize} bytes. */
    public static VfioUserHeader reply(int messageId, VfioUserCommand command, int payloadSize) {
        return new VfioUserHeader(messageId, command, SIZE + payloadSize, VFIO_USER_F_TYPE_REPLY(), 0);
    }

    /** An error reply: the header alone ("If an error occurs, the reply message must only include the reply header"). */
    public static VfioUserHeader errorReply(int messageId, VfioUserCommand command, int errno) {
        return new VfioUserHeader(messageId, command, SIZE, VFIO_USER_F_TYPE_REPLY() | VFIO_USER_F_ERROR(), errno);
    }

    /** @return true when the Type bits say reply */
    public boolean isReply() {
        return (flags & VFIO_USER_F_TYPE_MASK()) == VFIO_USER_F_TYPE_REPLY();
    }

    /** @return true when the No_reply bit is set */
    public boolean noReply() {
        return (flags & VFIO_USER_F_NO_REPLY()) != 0;
    }

    /** @return true when the Error bit is set */
    public boolean isError() {
        return (flags & VFIO_USER_F_ERROR()) != 0;
    }

    /** @return bytes after the header */
    public int payloadSize() {
        return messageSize - SIZE;
    }

    /** Writes the 16 bytes. */
    public void encode(ByteBuf out) {
        encode(Payloads.append(out, SIZE));
    }

    /** Writes the 16 bytes at the start of {@code out}. */
    public void encode(MemorySegment out) {
        vfio_user_header.msg_id(out, (short) messageId);
        vfio_user_header.cmd(out, (short) command.code());
        vfio_user_header.msg_size(out, messageSize);
        vfio_user_header.flags(out, flags);
        vfio_user_header.error_no(out, error);
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
        MemorySegment h = Payloads.view(in, in.readerIndex(), SIZE);
        in.skipBytes(SIZE);
        int id = Short.toUnsignedInt(vfio_user_header.msg_id(h));
        int code = Short.toUnsignedInt(vfio_user_header.cmd(h));
        long size = Integer.toUnsignedLong(vfio_user_header.msg_size(h));
        int flags = vfio_user_header.flags(h);
        int error = vfio_user_header.error_no(h);
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
        int type = flags & VFIO_USER_F_TYPE_MASK();
        if (type != VFIO_USER_F_TYPE_COMMAND() && type != VFIO_USER_F_TYPE_REPLY()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": message type " + type + " is neither command (0) nor reply (1)");
        }
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, String.format("vfio-user %s: undefined flag bits 0x%x", command, flags & ~KNOWN_FLAGS));
        }
        if (type == VFIO_USER_F_TYPE_REPLY() && noReply()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": No_reply set in a reply");
        }
        if (type == VFIO_USER_F_TYPE_COMMAND() && isError()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": Error set in a command");
        }
        if (isError() && messageSize != SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL, "vfio-user " + command + ": error reply of " + messageSize + " bytes, must be the 16-byte header alone");
        }
    }
}
