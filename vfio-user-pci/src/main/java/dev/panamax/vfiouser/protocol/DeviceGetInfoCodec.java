package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DEVICE_GET_INFO} (spec, "VFIO_USER_DEVICE_GET_INFO"): request and reply payload
 * are the first 16 bytes of {@code struct vfio_device_info} (linux/vfio.h):
 * <pre>
 *   0 u32 argsz   4 u32 flags (VFIO_DEVICE_FLAGS_RESET, _PCI)   8 u32 num_regions   12 u32 num_irqs
 * </pre>
 * (The kernel's struct has grown a {@code cap_offset} at 16; vfio-user does not carry it.)
 */
public final class DeviceGetInfoCodec {
    public static final int SIZE = 16;
    public static final int VFIO_DEVICE_FLAGS_RESET = 1 << 0;
    public static final int VFIO_DEVICE_FLAGS_PCI = 1 << 1;
    public static final int OFFSET_ARGSZ = 0;
    public static final int OFFSET_FLAGS = 4;
    public static final int OFFSET_NUM_REGIONS = 8;
    public static final int OFFSET_NUM_IRQS = 12;

    private DeviceGetInfoCodec() {
    }

    /**
     * @param argsz      request: largest reply payload wanted; reply: size of the full reply (16)
     * @param flags      VFIO_DEVICE_FLAGS_*; 0 in a request
     * @param numRegions regions the device exposes; 0 in a request
     * @param numIrqs    interrupt types; 0 in a request
     */
    public record DeviceInfo(long argsz, int flags, long numRegions, long numIrqs) {
        /** The request: argsz 16, everything else 0. */
        public static DeviceInfo request() {
            return new DeviceInfo(SIZE, 0, 0, 0);
        }
    }

    public static void encode(DeviceInfo d, ByteBuf out) {
        out.writeIntLE((int) d.argsz);
        out.writeIntLE(d.flags);
        out.writeIntLE((int) d.numRegions);
        out.writeIntLE((int) d.numIrqs);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes or argsz below 16, or non-zero fields in a request */
    public static DeviceInfo decodeRequest(ByteBuf in) {
        DeviceInfo d = decodeReply(in);
        Payloads.zero(d.flags, "DEVICE_GET_INFO request flags");
        Payloads.zero(d.numRegions, "DEVICE_GET_INFO request num_regions");
        Payloads.zero(d.numIrqs, "DEVICE_GET_INFO request num_irqs");
        return d;
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes or argsz below 16 */
    public static DeviceInfo decodeReply(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_INFO");
        long argsz = in.readUnsignedIntLE();
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_INFO");
        return new DeviceInfo(argsz, in.readIntLE(), in.readUnsignedIntLE(), in.readUnsignedIntLE());
    }
}
