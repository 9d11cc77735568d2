package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.bindings.vfio_user_region_io_fds_reply;
import dev.panamax.vfiouser.bindings.vfio_user_region_io_fds_request;
import dev.panamax.vfiouser.bindings.vfio_user_sub_region_ioeventfd;
import dev.panamax.vfiouser.bindings.vfio_user_sub_region_ioregionfd;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code VFIO_USER_DEVICE_GET_REGION_IO_FDS} (spec, "VFIO_USER_DEVICE_GET_REGION_IO_FDS"): the server offers
 * ioeventfds/ioregionfds for spans of a region. The request is {@code struct vfio_user_region_io_fds_request}
 * (argsz, flags 0, index, count 0), the reply {@code struct vfio_user_region_io_fds_reply}: the same 16 bytes with
 * count the number of sub-regions, then that many {@code struct vfio_user_sub_region_ioeventfd} (40 bytes: offset,
 * size, fd_index, type, flags, padding, datamatch) or {@code vfio_user_sub_region_ioregionfd} (the same layout,
 * user_data for datamatch, by {@code type}), each read and written through the {@code dev.panamax.vfiouser.bindings}.
 * The reply carries at least one fd; {@code fd_index} picks one of them. The spec's prose puts
 * entry i at {@code i * ((argsz - 32) / count)}, which contradicts its own table (a 16-byte fixed
 * part); we follow the table: entry i at 16 + 40 * i.
 */
public final class DeviceGetRegionIoFdsCodec {
    /** {@code sizeof(struct vfio_user_region_io_fds_request)}, also the fixed part of the reply: 16. */
    public static final int SIZE = (int) vfio_user_region_io_fds_request.sizeof();
    /** {@code sizeof(struct vfio_user_sub_region_ioeventfd)}: 40. */
    public static final int SUB_REGION_SIZE = (int) vfio_user_sub_region_ioeventfd.sizeof();

    private DeviceGetRegionIoFdsCodec() {
    }

    /** @param argsz largest reply payload wanted; @param index region index */
    public record Request(long argsz, long index) {
    }

    /**
     * @param offset  byte offset of the span in the region
     * @param size    bytes (0: any access size)
     * @param fdIndex which of the reply's fds
     * @param type    {@code VFIO_USER_IO_FD_TYPE_IOEVENTFD} or {@code VFIO_USER_IO_FD_TYPE_IOREGIONFD} ({@code vfio_user_h})
     * @param flags   KVM_IOEVENTFD_FLAG_* or KVM_IOREGION_*
     * @param value   datamatch (ioeventfd) or user_data (ioregionfd): the same bytes
     */
    public record SubRegion(long offset, long size, long fdIndex, long type, int flags, long value) {
    }

    /**
     * @param argsz      bytes of the full reply (more than arrived when the client's argsz was too small; then
     *                   {@code subRegions} is empty though {@code count} says how many there are)
     * @param count      sub-regions the server has
     */
    public record Reply(long argsz, long index, long count, List<SubRegion> subRegions) {
        public Reply {
            subRegions = List.copyOf(subRegions);
        }

        /** A full reply for these sub-regions. */
        public static Reply of(long index, List<SubRegion> subRegions) {
            return new Reply(SIZE + (long) SUB_REGION_SIZE * subRegions.size(), index, subRegions.size(), subRegions);
        }
    }

    public static void encode(Request r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_region_io_fds_request.argsz(s, (int) r.argsz);
        vfio_user_region_io_fds_request.index(s, (int) r.index);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, argsz below 16, non-zero flags or count */
    public static Request decodeRequest(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_REGION_IO_FDS request");
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_region_io_fds_request.argsz(s));
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_REGION_IO_FDS");
        Payloads.zero(vfio_user_region_io_fds_request.flags(s), "DEVICE_GET_REGION_IO_FDS request flags");
        Payloads.zero(vfio_user_region_io_fds_request.count(s), "DEVICE_GET_REGION_IO_FDS request count");
        in.skipBytes(SIZE);
        return new Request(argsz, Integer.toUnsignedLong(vfio_user_region_io_fds_request.index(s)));
    }

    /** Writes the reply; the sub-regions only when they fit in {@code maxReplySize} (the request's argsz). */
    public static void encodeReply(Reply r, long maxReplySize, ByteBuf out) {
        long needed = SIZE + (long) SUB_REGION_SIZE * r.subRegions.size();
        boolean full = needed <= maxReplySize;
        MemorySegment s = Payloads.append(out, full ? needed : SIZE);
        vfio_user_region_io_fds_reply.argsz(s, (int) needed);
        vfio_user_region_io_fds_reply.index(s, (int) r.index);
        vfio_user_region_io_fds_reply.count(s, r.subRegions.size());
        if (!full) {
            return;
        }
        for (int i = 0; i < r.subRegions.size(); i++) {
            SubRegion sub = r.subRegions.get(i);
            MemorySegment e = vfio_user_region_io_fds_reply.sub_regions(s, i);
            vfio_user_sub_region_ioeventfd.offset(e, sub.offset);
            vfio_user_sub_region_ioeventfd.size(e, sub.size);
            vfio_user_sub_region_ioeventfd.fd_index(e, (int) sub.fdIndex);
            vfio_user_sub_region_ioeventfd.type(e, (int) sub.type);
            vfio_user_sub_region_ioeventfd.flags(e, sub.flags);
            if (sub.type == vfio_user_h.VFIO_USER_IO_FD_TYPE_IOREGIONFD()) {
                vfio_user_sub_region_ioregionfd.user_data(e, sub.value);
            } else {
                vfio_user_sub_region_ioeventfd.datamatch(e, sub.value);
            }
        }
    }

    /** @throws VfioUserProtocolException EINVAL when truncated, flags non-zero, or the payload is not 16 + 40 * count bytes */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_GET_REGION_IO_FDS reply");
        int payload = in.readableBytes();
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_region_io_fds_reply.argsz(s));
        Payloads.zero(vfio_user_region_io_fds_reply.flags(s), "DEVICE_GET_REGION_IO_FDS reply flags");
        long index = Integer.toUnsignedLong(vfio_user_region_io_fds_reply.index(s));
        long count = Integer.toUnsignedLong(vfio_user_region_io_fds_reply.count(s));
        long full = SIZE + SUB_REGION_SIZE * count;
        in.skipBytes(payload);
        if (payload == SIZE && argsz > SIZE) {
            return new Reply(argsz, index, count, List.of());
        }
        if (argsz != full || payload != full) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_IO_FDS reply with count " + count
                    + " must be " + full + " bytes, has argsz " + argsz + " and " + payload + " bytes");
        }
        List<SubRegion> subs = new ArrayList<>();
        for (long i = 0; i < count; i++) {
            MemorySegment e = vfio_user_region_io_fds_reply.sub_regions(s, i);
            long type = Integer.toUnsignedLong(vfio_user_sub_region_ioeventfd.type(e));
            long value = type == vfio_user_h.VFIO_USER_IO_FD_TYPE_IOREGIONFD()
                    ? vfio_user_sub_region_ioregionfd.user_data(e) : vfio_user_sub_region_ioeventfd.datamatch(e);
            subs.add(new SubRegion(vfio_user_sub_region_ioeventfd.offset(e), vfio_user_sub_region_ioeventfd.size(e),
                    Integer.toUnsignedLong(vfio_user_sub_region_ioeventfd.fd_index(e)), type,
                    vfio_user_sub_region_ioeventfd.flags(e), value));
        }
        return new Reply(argsz, index, count, subs);
    }

    /**
     * Checks the reply's fds: at least one when there are sub-regions, and every fd_index in range.
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(Reply r, int fdCount) {
        if (r.count > 0 && fdCount == 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_IO_FDS reply has " + r.count + " sub-regions but no fd");
        }
        for (SubRegion s : r.subRegions) {
            if (s.fdIndex >= fdCount) {
                throw new VfioUserProtocolException(Errno.EINVAL,
                        "DEVICE_GET_REGION_IO_FDS fd_index " + s.fdIndex + " but only " + fdCount + " fds came");
            }
        }
    }
}
