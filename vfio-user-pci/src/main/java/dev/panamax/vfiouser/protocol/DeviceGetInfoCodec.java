package dev.panamax.vfiouser.protocol;

import dev.panamax.vfio.bindings.vfio_device_info;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

/**
 * {@code VFIO_USER_DEVICE_GET_INFO} (spec, "VFIO_USER_DEVICE_GET_INFO"): request and reply payload are the first
 * 16 bytes of {@code struct vfio_device_info} ({@code <linux/vfio.h>}, read and written through vfio-pci's
 * {@link vfio_device_info} binding): argsz, flags ({@code VFIO_DEVICE_FLAGS_RESET}, {@code _PCI} of
 * {@code vfio_h}), num_regions, num_irqs. The kernel's struct has grown a {@code cap_offset} at 16; vfio-user does
 * not carry it.
 */
public final class DeviceGetInfoCodec {
    /** Bytes of the payload: {@code struct vfio_device_info} up to {@code cap_offset}. */
    public static final int SIZE = (int) vfio_device_info.cap_offset$offset();

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
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_device_info.argsz(s, (int) d.argsz);
        vfio_device_info.flags(s, d.flags);
        vfio_device_info.num_regions(s, (int) d.numRegions);
        vfio_device_info.num_irqs(s, (int) d.numIrqs);
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
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_device_info.argsz(s));
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_INFO");
        in.skipBytes(SIZE);
        return new DeviceInfo(argsz, vfio_device_info.flags(s), Integer.toUnsignedLong(vfio_device_info.num_regions(s)),
                Integer.toUnsignedLong(vfio_device_info.num_irqs(s)));
    }
}
