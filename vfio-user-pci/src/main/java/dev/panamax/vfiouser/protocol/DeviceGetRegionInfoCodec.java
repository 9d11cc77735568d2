package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_info_cap_header;
import dev.panamax.vfio.bindings.vfio_region_info;
import dev.panamax.vfio.bindings.vfio_region_info_cap_sparse_mmap;
import dev.panamax.vfio.bindings.vfio_region_sparse_mmap_area;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * {@code VFIO_USER_DEVICE_GET_REGION_INFO} (spec, "VFIO_USER_DEVICE_GET_REGION_INFO"): request and reply payload
 * are {@code struct vfio_region_info} ({@code <linux/vfio.h>}, read and written through vfio-pci's
 * {@link vfio_region_info} binding), 32 bytes. A reply with {@code VFIO_REGION_INFO_FLAG_CAPS} continues with a
 * chain of capabilities ("VFIO region capabilities"), each starting with {@code struct vfio_info_cap_header};
 * {@code cap_offset} and {@code next} count from the start of the payload, {@code next} 0 ends it. A reply with
 * {@code VFIO_REGION_INFO_FLAG_MMAP} carries the region's fd.
 *
 * <p>A reply decodes into vfio-pci's {@link VfioRegionInfo}, by the same {@link VfioRegionInfo#parse} as the
 * kernel's answer: capabilities other than {@code VFIO_REGION_INFO_CAP_SPARSE_MMAP} and
 * {@code VFIO_REGION_INFO_CAP_MSIX_MAPPABLE} are skipped.
 */
public final class DeviceGetRegionInfoCodec {
    /** {@code sizeof(struct vfio_region_info)}: 32. */
    public static final int SIZE = (int) vfio_region_info.sizeof();
    /**
     * The {@code version} of the capabilities written here: {@code <linux/vfio.h>} has no macro for it, the kernel
     * writes 1 for both ({@code drivers/vfio/pci/vfio_pci_core.c}).
     */
    private static final short CAP_VERSION = 1;

    private DeviceGetRegionInfoCodec() {
    }

    /** @param argsz largest reply payload wanted (at least 32); @param index region index */
    public record Request(long argsz, long index) {
    }

    /**
     * A decoded reply.
     *
     * @param argsz bytes of the full reply; larger than what arrived when the client's argsz was too small,
     *              in which case {@code info.capabilities()} is empty and the client should ask again
     */
    public record Reply(long argsz, VfioRegionInfo info) {
    }

    public static void encode(Request r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_region_info.argsz(s, (int) r.argsz);
        vfio_region_info.index(s, (int) r.index);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 32 bytes, argsz below 32, or non-zero fields besides index */
    public static Request decodeRequest(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_REGION_INFO request");
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_region_info.argsz(s));
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_REGION_INFO");
        Payloads.zero(vfio_region_info.flags(s), "DEVICE_GET_REGION_INFO request flags");
        Payloads.zero(vfio_region_info.cap_offset(s), "DEVICE_GET_REGION_INFO request cap_offset");
        Payloads.zero(vfio_region_info.size(s), "DEVICE_GET_REGION_INFO request size");
        Payloads.zero(vfio_region_info.offset(s), "DEVICE_GET_REGION_INFO request offset");
        in.skipBytes(SIZE);
        return new Request(argsz, Integer.toUnsignedLong(vfio_region_info.index(s)));
    }

    /** @return bytes of the full reply for {@code info}: 32 plus its capabilities */
    public static int replySize(VfioRegionInfo info) {
        int n = SIZE;
        for (VfioRegionInfo.Capability c : info.capabilities()) {
            n += capSize(c);
        }
        return n;
    }

    /**
     * Writes the reply: {@code info}'s flags, with {@code VFIO_REGION_INFO_FLAG_CAPS} added when it has
     * capabilities. When the full reply does not fit in {@code maxReplySize} (the request's argsz), writes only the
     * 32-byte struct, with argsz the size needed and cap_offset 0 (spec, "Message sizes").
     */
    public static void encodeReply(VfioRegionInfo info, long maxReplySize, ByteBuf out) {
        int needed = replySize(info);
        List<VfioRegionInfo.Capability> caps = info.capabilities();
        boolean full = needed <= maxReplySize;
        MemorySegment s = Payloads.append(out, full ? needed : SIZE);
        vfio_region_info.argsz(s, needed);
        vfio_region_info.flags(s, info.flags() | (caps.isEmpty() ? 0 : vfio_h.VFIO_REGION_INFO_FLAG_CAPS()));
        vfio_region_info.index(s, info.index());
        vfio_region_info.cap_offset(s, !caps.isEmpty() && full ? SIZE : 0);
        vfio_region_info.size(s, info.size());
        vfio_region_info.offset(s, info.offset());
        if (!full) {
            return;
        }
        int at = SIZE;
        for (int i = 0; i < caps.size(); i++) {
            VfioRegionInfo.Capability c = caps.get(i);
            int size = capSize(c);
            MemorySegment cap = s.asSlice(at, size);
            vfio_info_cap_header.version(cap, CAP_VERSION);
            vfio_info_cap_header.next(cap, i + 1 < caps.size() ? at + size : 0);
            switch (c) {
                case VfioRegionInfo.SparseMmap sparse -> {
                    vfio_info_cap_header.id(cap, (short) vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP());
                    vfio_region_info_cap_sparse_mmap.nr_areas(cap, sparse.areas().size());
                    for (int a = 0; a < sparse.areas().size(); a++) {
                        MemorySegment area = vfio_region_info_cap_sparse_mmap.areas(cap, a);
                        vfio_region_sparse_mmap_area.offset(area, sparse.areas().get(a).offset());
                        vfio_region_sparse_mmap_area.size(area, sparse.areas().get(a).size());
                    }
                }
                case VfioRegionInfo.MsixMappable m ->
                        vfio_info_cap_header.id(cap, (short) vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE());
            }
            at += size;
        }
    }

    /**
     * Reads a reply and walks its capability chain ({@link VfioRegionInfo#parse}).
     *
     * @throws VfioUserProtocolException EINVAL when truncated, when argsz disagrees with a full payload, when there
     *         are capability bytes without {@code VFIO_REGION_INFO_FLAG_CAPS}, or when a capability lies outside the
     *         payload, overlaps the struct or the next capability, or the chain does not move forward
     */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_GET_REGION_INFO reply");
        int payload = in.readableBytes();
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_region_info.argsz(s));
        int flags = vfio_region_info.flags(s);
        long capOffset = Integer.toUnsignedLong(vfio_region_info.cap_offset(s));
        in.skipBytes(payload);
        if (payload == SIZE && argsz > SIZE) {
            // The client's argsz was too small: the capabilities were left out, argsz says how much to ask for.
            return new Reply(argsz, new VfioRegionInfo(vfio_region_info.index(s), flags, vfio_region_info.size(s),
                    vfio_region_info.offset(s), List.of()));
        }
        if (argsz != payload) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_GET_REGION_INFO reply argsz " + argsz + " differs from the payload size " + payload);
        }
        if ((flags & vfio_h.VFIO_REGION_INFO_FLAG_CAPS()) == 0 && (capOffset != 0 || payload != SIZE)) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO reply without FLAG_CAPS has cap_offset "
                    + capOffset + " and " + payload + " bytes");
        }
        try {
            return new Reply(argsz, VfioRegionInfo.parse(s));
        } catch (IllegalArgumentException e) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO reply: " + e.getMessage());
        }
    }

    /**
     * Checks the fds that came with a reply: one exactly when the region has FLAG_MMAP ("When this
     * flag is set, the reply will include a file descriptor in its meta-data").
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(VfioRegionInfo info, int fdCount) {
        int expected = info.mmappable() ? 1 : 0;
        if (fdCount != expected) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO reply for region " + info.index()
                    + " came with " + fdCount + " fds, its flags 0x" + Integer.toHexString(info.flags()) + " need " + expected);
        }
    }

    private static int capSize(VfioRegionInfo.Capability c) {
        return switch (c) {
            case VfioRegionInfo.SparseMmap s ->
                    (int) (vfio_region_info_cap_sparse_mmap.sizeof() + s.areas().size() * vfio_region_sparse_mmap_area.sizeof());
            case VfioRegionInfo.MsixMappable m -> (int) vfio_info_cap_header.sizeof();
        };
    }
}
