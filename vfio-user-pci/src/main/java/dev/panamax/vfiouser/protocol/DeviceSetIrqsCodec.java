package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.bindings.vfio_irq_set;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TYPE_MASK;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_TYPE_MASK;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_DEVICE_SET_IRQS} (spec, "VFIO_USER_DEVICE_SET_IRQS"): request payload is {@code struct vfio_irq_set}
 * ({@code <linux/vfio.h>}, vfio-pci's {@link vfio_irq_set} binding): argsz (20 + data bytes), flags (one
 * {@code VFIO_IRQ_SET_DATA_*}, one {@code VFIO_IRQ_SET_ACTION_*} of {@code vfio_h}), index, start, count, then with
 * DATA_BOOL {@code count} bytes of booleans. With DATA_EVENTFD the eventfds travel as SCM_RIGHTS, not in
 * {@code data} (none: de-assign). The reply has no payload.
 */
public final class DeviceSetIrqsCodec {
    /** {@code sizeof(struct vfio_irq_set)}: the bytes before {@code data}. */
    public static final int SIZE = (int) vfio_irq_set.sizeof();

    private DeviceSetIrqsCodec() {
    }

    /**
     * @param flags one of VFIO_IRQ_SET_DATA_NONE/BOOL/EVENTFD or'ed with one of VFIO_IRQ_SET_ACTION_MASK/UNMASK/TRIGGER
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
        MemorySegment m = Payloads.append(out, SIZE + s.data.length);
        vfio_irq_set.argsz(m, SIZE + s.data.length);
        vfio_irq_set.flags(m, s.flags);
        vfio_irq_set.index(m, (int) s.index);
        vfio_irq_set.start(m, (int) s.start);
        vfio_irq_set.count(m, (int) s.count);
        MemorySegment.copy(s.data, 0, m, JAVA_BYTE, vfio_irq_set.data$offset(), s.data.length);
    }

    /** @throws VfioUserProtocolException EINVAL when truncated, argsz differs from the payload size, or flags/data disagree */
    public static IrqSet decode(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_SET_IRQS request");
        int payload = in.readableBytes();
        MemorySegment m = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_irq_set.argsz(m));
        if (argsz != payload) {
            // "argsz is the size of the VFIO IRQ set request payload, including any data field."
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS argsz " + argsz + " differs from the payload size " + payload);
        }
        byte[] data = m.asSlice(vfio_irq_set.data$offset()).toArray(JAVA_BYTE);
        in.skipBytes(payload);
        return new IrqSet(vfio_irq_set.flags(m), Integer.toUnsignedLong(vfio_irq_set.index(m)),
                Integer.toUnsignedLong(vfio_irq_set.start(m)), Integer.toUnsignedLong(vfio_irq_set.count(m)), data);
    }

    /**
     * Checks the file descriptors that came with a request: with DATA_EVENTFD none (de-assign) or
     * one per sub-index; otherwise none.
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(IrqSet s, int fdCount) {
        boolean eventfd = (s.flags & VFIO_IRQ_SET_DATA_EVENTFD()) != 0;
        if (eventfd ? fdCount != 0 && fdCount != s.count : fdCount != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS with flags 0x" + Integer.toHexString(s.flags)
                    + " and count " + s.count + " came with " + fdCount + " file descriptors");
        }
    }

    private static void check(int flags, long count, int dataBytes) {
        int data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK();
        int action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK();
        if (Integer.bitCount(data) != 1 || Integer.bitCount(action) != 1
                || (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK() | VFIO_IRQ_SET_ACTION_TYPE_MASK())) != 0) {
            // "The flags are mutually exclusive for both sets."
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS flags 0x" + Integer.toHexString(flags) + " must hold exactly one DATA_ and one ACTION_ flag");
        }
        long expected = data == VFIO_IRQ_SET_DATA_BOOL() ? count : 0;
        if (dataBytes != expected) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_SET_IRQS has " + dataBytes + " data bytes, flags 0x" + Integer.toHexString(flags)
                            + " and count " + count + " need " + expected);
        }
    }
}
