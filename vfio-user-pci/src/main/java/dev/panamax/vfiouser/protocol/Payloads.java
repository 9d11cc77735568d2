package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

/** Size checks shared by the codecs; every failure is a {@link VfioUserProtocolException}. */
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

    static byte[] bytes(ByteBuf in, int n) {
        byte[] b = new byte[n];
        in.readBytes(b);
        return b;
    }
}
