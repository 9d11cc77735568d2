package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;

import java.lang.foreign.MemorySegment;

/**
 * Size checks shared by the codecs, every failure a {@link VfioUserProtocolException}; and the segments through which
 * the codecs read and write the generated bindings ({@code dev.panamax.vfio.bindings} for the {@code <linux/vfio.h>}
 * structs, {@code dev.panamax.vfiouser.bindings} for vfio-user's own). Their accessors are unaligned, so a segment
 * over a heap buffer's {@code byte[]} at any offset serves.
 */
final class Payloads {
    private Payloads() {
    }

    /** @throws VfioUserProtocolException EINVAL unless exactly {@code size} bytes are readable */
    static void exactly(ByteBuf in, int size, String what) {
        if (in.readableBytes() != size) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    what + " payload is " + in.readableBytes() + " bytes, must be " + size);
        }
    }

    /** @throws VfioUserProtocolException EINVAL when fewer than {@code size} bytes are readable */
    static void atLeast(ByteBuf in, int size, String what) {
        if (in.readableBytes() < size) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    what + " payload truncated: " + in.readableBytes() + " bytes, needs at least " + size);
        }
    }

    /** @throws VfioUserProtocolException EINVAL when {@code field} is not 0 */
    static void zero(long field, String what) {
        if (field != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + " is " + field + ", must be 0");
        }
    }

    /** @throws VfioUserProtocolException EINVAL when {@code argsz} is below {@code min} */
    static void argszAtLeast(long argsz, int min, String what) {
        if (argsz < min) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + " argsz " + argsz + " is below " + min);
        }
    }

    /**
     * Checks a data transfer's {@code count} against the bytes that follow and the negotiated
     * {@code max_data_xfer_size} (spec, "Read and Write Operations").
     *
     * @throws VfioUserProtocolException E2BIG above the maximum, EINVAL when the data is not exactly {@code count} bytes
     */
    static void dataCount(long count, int dataBytes, long maxDataXferSize, String what) {
        if (count > maxDataXferSize) {
            throw new VfioUserProtocolException(Errno.E2BIG,
                    what + " count " + count + " exceeds max_data_xfer_size " + maxDataXferSize);
        }
        if (count != dataBytes) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    what + " count " + count + " does not match the " + dataBytes + " data bytes in the message");
        }
    }

    /** @throws VfioUserProtocolException E2BIG above the maximum */
    static void countLimit(long count, long maxDataXferSize, String what) {
        if (count < 0 || count > maxDataXferSize) {
            throw new VfioUserProtocolException(Errno.E2BIG,
                    what + " count " + Long.toUnsignedString(count) + " exceeds max_data_xfer_size " + maxDataXferSize);
        }
    }

    /** The readable bytes of {@code in} as a segment, without copying (a composite buffer excepted); the reader index stays. */
    static MemorySegment view(ByteBuf in) {
        return view(in, in.readerIndex(), in.readableBytes());
    }

    static MemorySegment view(ByteBuf b, int index, int length) {
        if (b.hasArray()) {
            return MemorySegment.ofArray(b.array()).asSlice(b.arrayOffset() + index, length);
        }
        if (b.nioBufferCount() == 1) {
            return MemorySegment.ofBuffer(b.nioBuffer(index, length));
        }
        return MemorySegment.ofArray(ByteBufUtil.getBytes(b, index, length));
    }

    /**
     * Appends {@code size} zero bytes to {@code out} and returns them as a segment to fill through the bindings.
     *
     * @throws IllegalArgumentException for a buffer whose memory is not one array or one direct buffer
     */
    static MemorySegment append(ByteBuf out, long size) {
        int at = out.writerIndex();
        out.writeZero((int) size);
        if (out.hasArray()) {
            return MemorySegment.ofArray(out.array()).asSlice(out.arrayOffset() + at, size);
        }
        if (out.isDirect() && out.nioBufferCount() == 1) {
            return MemorySegment.ofBuffer(out.nioBuffer(at, (int) size));
        }
        throw new IllegalArgumentException("cannot encode into a " + out.getClass().getSimpleName());
    }

    static byte[] bytes(ByteBuf in, int n) {
        byte[] b = new byte[n];
        in.readBytes(b);
        return b;
    }
}
