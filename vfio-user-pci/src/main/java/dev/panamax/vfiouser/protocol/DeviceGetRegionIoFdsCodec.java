package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code VFIO_USER_DEVICE_GET_REGION_IO_FDS} (spec, "VFIO_USER_DEVICE_GET_REGION_IO_FDS"): the
 * server offers ioeventfds/ioregionfds for spans of a region.
 * <pre>
 *   request: 0 u32 argsz   4 u32 flags (0)   8 u32 index   12 u32 count (0)
 *   reply:   the same 16 bytes, count = sub-regions, then count sub-regions of 40 bytes:
 *            0 u64 offset   8 u64 size   16 u32 fd_index   20 u32 type   24 u32 flags
 *            28 u32 padding   32 u64 datamatch (ioeventfd) or user_data (ioregionfd)
 * </pre>
 * The reply carries at least one fd; {@code fd_index} picks one of them. The spec's prose puts
 * entry i at {@code i * ((argsz - 32) / count)}, which contradicts its own table (a 16-byte fixed
 * part); we follow the table: entry i at 16 + 40 * i.
 */
public final class DeviceGetRegionIoFdsCodec {
    public static final int SIZE = 16;
    public static final int SUB_REGION_SIZE = 40;
    /** Sub-region types, numbered as libvfio-user does (the spec names them without values). */
    public static final int VFIO_USER_IO_FD_TYPE_IOEVENTFD = 0;
    public static final int VFIO_USER_IO_FD_TYPE_IOREGIONFD = 1;

    private DeviceGetRegionIoFdsCodec() {
    }

    /** @param argsz largest reply payload wanted; @param index region index */
    public record Request(long argsz, long index) {
    }

    /**
     * @param offset  byte offset of the span in the region
     * @param size    bytes (0: any access size)
     * @param fdIndex which of the reply's fds
     * @param type    {@link #VFIO_USER_IO_FD_TYPE_IOEVENTFD} or {@link #VFIO_USER_IO_FD_TYPE_IOREGIONFD}
     * @param flags   KVM_IOEVENTFD_FLAG_* or KVM_IOREGION_*
     * @param value   datamatch (ioeventfd) or user_data (ioregionfd)
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
        out.writeIntLE((int) r.argsz);
        out.writeIntLE(0);
        out.writeIntLE((int) r.index);
        out.writeIntLE(0);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, argsz below 16, non-zero flags or count */
    public static Request decodeRequest(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_REGION_IO_FDS request");
        long argsz = in.readUnsignedIntLE();
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_REGION_IO_FDS");
        Payloads.zero(in.readIntLE(), "DEVICE_GET_REGION_IO_FDS request flags");
        long index = in.readUnsignedIntLE();
        Payloads.zero(in.readUnsignedIntLE(), "DEVICE_GET_REGION_IO_FDS request count");
        return new Request(argsz, index);
    }

    /** Writes the reply; the sub-regions only when they fit in {@code maxReplySize} (the request's argsz). */
    public static void encodeReply(Reply r, long maxReplySize, ByteBuf out) {
        long needed = SIZE + (long) SUB_REGION_SIZE * r.subRegions.size();
        out.writeIntLE((int) needed);
        out.writeIntLE(0);
        out.writeIntLE((int) r.index);
        out.writeIntLE(r.subRegions.size());
        if (needed > maxReplySize) {
            return;
        }
        for (SubRegion s : r.subRegions) {
            out.writeLongLE(s.offset);
            out.writeLongLE(s.size);
            out.writeIntLE((int) s.fdIndex);
            out.writeIntLE((int) s.type);
            out.writeIntLE(s.flags);
            out.writeIntLE(0);
            out.writeLongLE(s.value);
        }
    }

    /** @throws VfioUserProtocolException EINVAL when truncated, flags non-zero, or the payload is not 16 + 40 * count bytes */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_GET_REGION_IO_FDS reply");
        int payload = in.readableBytes();
        long argsz = in.readUnsignedIntLE();
        Payloads.zero(in.readIntLE(), "DEVICE_GET_REGION_IO_FDS reply flags");
        long index = in.readUnsignedIntLE();
        long count = in.readUnsignedIntLE();
        long full = SIZE + SUB_REGION_SIZE * count;
        if (payload == SIZE && argsz > SIZE) {
            return new Reply(argsz, index, count, List.of());
        }
        if (argsz != full || payload != full) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_IO_FDS reply with count " + count
                    + " must be " + full + " bytes, has argsz " + argsz + " and " + payload + " bytes");
        }
        List<SubRegion> subs = new ArrayList<>();
        for (long i = 0; i < count; i++) {
            long offset = in.readLongLE();
            long size = in.readLongLE();
            long fdIndex = in.readUnsignedIntLE();
            long type = in.readUnsignedIntLE();
            int flags = in.readIntLE();
            in.readIntLE(); // padding
            subs.add(new SubRegion(offset, size, fdIndex, type, flags, in.readLongLE()));
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
