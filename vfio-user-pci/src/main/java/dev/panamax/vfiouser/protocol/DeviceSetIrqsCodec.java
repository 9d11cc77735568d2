package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DEVICE_SET_IRQS} (spec, "VFIO_USER_DEVICE_SET_IRQS"): request payload is
 * {@code struct vfio_irq_set} (linux/vfio.h):
 * <pre>
 *   0 u32 argsz (20 + data bytes)   4 u32 flags (one DATA_*, one ACTION_*)   8 u32 index
 *   12 u32 start   16 u32 count   20 data: with DATA_BOOL, {@code count} bytes of booleans
 * </pre>
 * With DATA_EVENTFD the eventfds travel as SCM_RIGHTS, not in {@code data} (none: de-assign).
 * The reply has no payload.
 */
public final class DeviceSetIrqsCodec {
    public static final int SIZE = 20;
    public static final int VFIO_IRQ_SET_DATA_NONE = 1 << 0;
    public static final int VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
    public static final int VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
    public static final int VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
    public static final int VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
    public static final int VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
    public static final int DATA_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
    public static final int ACTION_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;
    public static final int OFFSET_ARGSZ = 0;
    public static final int OFFSET_FLAGS = 4;
    public static final int OFFSET_INDEX = 8;
    public static final int OFFSET_START = 12;
    public static final int OFFSET_COUNT = 16;
    public static final int OFFSET_DATA = 20;

    private DeviceSetIrqsCodec() {
    }

    /**
     * @param flags one of DATA_NONE/BOOL/EVENTFD or'ed with one of ACTION_MASK/UNMASK/TRIGGER
     * @param index IRQ type
     * @param start first sub-index
     * @param count sub-indexes (start and count 0 with DATA_NONE: all of the index)
     * @param data  {@code count} boolean bytes with DATA_BOOL, else empty
     */
    public record IrqSet(int flags, long index, long start, long count, byte[] data) {
        public IrqSet {
            data = data.clone();
            check(flags, count, data.length);
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    public static void encode(IrqSet s, ByteBuf out) {
        out.writeIntLE(SIZE + s.data.length);
        out.writeIntLE(s.flags);
        out.writeIntLE((int) s.index);
        out.writeIntLE((int) s.start);
        out.writeIntLE((int) s.count);
        out.writeBytes(s.data);
    }

    /** @throws VfioUserProtocolException EINVAL when truncated, argsz differs from the payload size, or flags/data disagree */
    public static IrqSet decode(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_SET_IRQS request");
        int payload = in.readableBytes();
        long argsz = in.readUnsignedIntLE();
        if (argsz != payload) {
            // "argsz is the size of the VFIO IRQ set request payload, including any data field."
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS argsz " + argsz + " differs from the payload size " + payload);
        }
        int flags = in.readIntLE();
        long index = in.readUnsignedIntLE();
        long start = in.readUnsignedIntLE();
        long count = in.readUnsignedIntLE();
        return new IrqSet(flags, index, start, count, Payloads.bytes(in, in.readableBytes()));
    }

    /**
     * Checks the file descriptors that came with a request: with DATA_EVENTFD none (de-assign) or
     * one per sub-index; otherwise none.
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(IrqSet s, int fdCount) {
        boolean eventfd = (s.flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0;
        if (eventfd ? fdCount != 0 && fdCount != s.count : fdCount != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS with flags 0x" + Integer.toHexString(s.flags)
                    + " and count " + s.count + " came with " + fdCount + " file descriptors");
        }
    }

    private static void check(int flags, long count, int dataBytes) {
        int data = flags & DATA_MASK;
        int action = flags & ACTION_MASK;
        if (Integer.bitCount(data) != 1 || Integer.bitCount(action) != 1 || (flags & ~(DATA_MASK | ACTION_MASK)) != 0) {
            // "The flags are mutually exclusive for both sets."
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS flags 0x" + Integer.toHexString(flags) + " must hold exactly one DATA_ and one ACTION_ flag");
        }
        long expected = data == VFIO_IRQ_SET_DATA_BOOL ? count : 0;
        if (dataBytes != expected) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS has " + dataBytes + " data bytes, flags 0x" + Integer.toHexString(flags)
                            + " and count " + count + " need " + expected);
        }
    }
}
