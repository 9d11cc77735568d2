package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DEVICE_GET_IRQ_INFO} (spec, "VFIO_USER_DEVICE_GET_IRQ_INFO"): request and reply
 * payload are {@code struct vfio_irq_info} (linux/vfio.h), 16 bytes:
 * <pre>
 *   0 u32 argsz   4 u32 flags (VFIO_IRQ_INFO_*)   8 u32 index   12 u32 count
 * </pre>
 */
public final class DeviceGetIrqInfoCodec {
    public static final int SIZE = 16;
    public static final int VFIO_IRQ_INFO_EVENTFD = 1 << 0;
    public static final int VFIO_IRQ_INFO_MASKABLE = 1 << 1;
    public static final int VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
    public static final int VFIO_IRQ_INFO_NORESIZE = 1 << 3;
    public static final int OFFSET_ARGSZ = 0;
    public static final int OFFSET_FLAGS = 4;
    public static final int OFFSET_INDEX = 8;
    public static final int OFFSET_COUNT = 12;

    private DeviceGetIrqInfoCodec() {
    }

    /**
     * @param argsz request: largest reply payload wanted; reply: size of the full reply (16)
     * @param flags VFIO_IRQ_INFO_*; 0 in a request
     * @param index IRQ type, e.g. VFIO_PCI_MSIX_IRQ_INDEX (4)
     * @param count interrupts of that type; 0 in a request
     */
    public record IrqInfo(long argsz, int flags, long index, long count) {
        public static IrqInfo request(long index) {
            return new IrqInfo(SIZE, 0, index, 0);
        }
    }

    public static void encode(IrqInfo i, ByteBuf out) {
        out.writeIntLE((int) i.argsz);
        out.writeIntLE(i.flags);
        out.writeIntLE((int) i.index);
        out.writeIntLE((int) i.count);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, argsz below 16, or non-zero flags/count */
    public static IrqInfo decodeRequest(ByteBuf in) {
        IrqInfo i = decodeReply(in);
        Payloads.zero(i.flags, "DEVICE_GET_IRQ_INFO request flags");
        Payloads.zero(i.count, "DEVICE_GET_IRQ_INFO request count");
        return i;
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes or argsz below 16 */
    public static IrqInfo decodeReply(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_IRQ_INFO");
        long argsz = in.readUnsignedIntLE();
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_IRQ_INFO");
        return new IrqInfo(argsz, in.readIntLE(), in.readUnsignedIntLE(), in.readUnsignedIntLE());
    }
}
