package dev.panamax.vfiouser.protocol;

import dev.panamax.vfiouser.bindings.vfio_user_region_access;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_REGION_READ} (spec, "VFIO_USER_REGION_READ"): the client reads a device region. Request and
 * reply are {@link vfio_user_region_access} (offset in the region, region index, count in bytes), the reply
 * followed by the {@code count} bytes read. {@code count} must not exceed the peer's {@code max_data_xfer_size}.
 */
public final class RegionReadCodec {
    /** {@code sizeof(struct vfio_user_region_access)}. */
    public static final int SIZE = (int) vfio_user_region_access.sizeof();

    private RegionReadCodec() {
    }

    /** @param offset byte offset in the region; @param region region index; @param count bytes */
    public record Request(long offset, long region, long count) {
    }

    /** @param data the bytes read (held, not copied); its length is the {@code count} field */
    public record Reply(long offset, long region, byte[] data) {
    }

    public static void encode(Request r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_region_access.offset(s, r.offset);
        vfio_user_region_access.region(s, (int) r.region);
        vfio_user_region_access.count(s, (int) r.count);
    }

    public static void encode(Reply r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE + r.data.length);
        vfio_user_region_access.offset(s, r.offset);
        vfio_user_region_access.region(s, (int) r.region);
        vfio_user_region_access.count(s, r.data.length);
        MemorySegment.copy(r.data, 0, s, JAVA_BYTE, vfio_user_region_access.data$offset(), r.data.length);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, E2BIG for a count above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.exactly(in, SIZE, "REGION_READ request");
        MemorySegment s = Payloads.view(in);
        in.skipBytes(SIZE);
        Request r = new Request(vfio_user_region_access.offset(s), Integer.toUnsignedLong(vfio_user_region_access.region(s)),
                Integer.toUnsignedLong(vfio_user_region_access.count(s)));
        Payloads.countLimit(r.count, maxDataXferSize, "REGION_READ");
        return r;
    }

    /**
     * @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize}
     */
    public static Reply decodeReply(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "REGION_READ reply");
        MemorySegment s = Payloads.view(in);
        long count = Integer.toUnsignedLong(vfio_user_region_access.count(s));
        Payloads.dataCount(count, in.readableBytes() - SIZE, maxDataXferSize, "REGION_READ reply");
        in.skipBytes(in.readableBytes());
        return new Reply(vfio_user_region_access.offset(s), Integer.toUnsignedLong(vfio_user_region_access.region(s)),
                s.asSlice(vfio_user_region_access.data$offset(), count).toArray(JAVA_BYTE));
    }
}
