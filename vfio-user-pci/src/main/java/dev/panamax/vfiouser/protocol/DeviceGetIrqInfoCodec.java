package dev.panamax.vfiouser.protocol;

import dev.panamax.vfio.bindings.vfio_irq_info;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

/**
 * {@code VFIO_USER_DEVICE_GET_IRQ_INFO} (spec, "VFIO_USER_DEVICE_GET_IRQ_INFO"): request and reply payload are
 * {@code struct vfio_irq_info} ({@code <linux/vfio.h>}, vfio-pci's {@link vfio_irq_info} binding), 16 bytes:
 * argsz, flags ({@code VFIO_IRQ_INFO_*} of {@code vfio_h}), index, count.
 */
public final class DeviceGetIrqInfoCodec {
    /** {@code sizeof(struct vfio_irq_info)}. */
    public static final int SIZE = (int) vfio_irq_info.sizeof();

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
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_irq_info.argsz(s, (int) i.argsz);
        vfio_irq_info.flags(s, i.flags);
        vfio_irq_info.index(s, (int) i.index);
        vfio_irq_info.count(s, (int) i.count);
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
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_irq_info.argsz(s));
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_IRQ_INFO");
        in.skipBytes(SIZE);
        return new IrqInfo(argsz, vfio_irq_info.flags(s), Integer.toUnsignedLong(vfio_irq_info.index(s)),
                Integer.toUnsignedLong(vfio_irq_info.count(s)));
    }
}
