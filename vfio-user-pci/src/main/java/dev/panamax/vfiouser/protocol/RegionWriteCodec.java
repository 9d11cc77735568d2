package dev.panamax.vfiouser.protocol;

import dev.panamax.vfiouser.bindings.vfio_user_region_access;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_REGION_WRITE} (spec, "VFIO_USER_REGION_WRITE"): the client writes a device region. Request and
 * reply are {@link vfio_user_region_access} (offset in the region, region index, count in bytes), the request
 * followed by the {@code count} bytes to write; the reply's count is the bytes written.
 */
public final class RegionWriteCodec {
    /** {@code sizeof(struct vfio_user_region_access)}. */
    public static final int SIZE = (int) vfio_user_region_access.sizeof();

    private RegionWriteCodec() {
    }

    /** @param data the bytes to write (held, not copied); its length is the {@code count} field */
    public record Request(long offset, long region, byte[] data) {
    }

    /** @param count bytes written */
    public record Reply(long offset, long region, long count) {
    }

    public static void encode(Request r, ByteBuf out) {
        encode(r.offset, r.region, MemorySegment.ofArray(r.data), out);
    }

    /**
     * Writes a request straight from the caller's bytes: {@code data} is copied once, into {@code out}.
     *
     * @param offset byte offset in the region
     * @param region region index
     * @param data   the bytes to write; its size is the {@code count} field
     */
    public static void encode(long offset, long region, MemorySegment data, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE + data.byteSize());
        vfio_user_region_access.offset(s, offset);
        vfio_user_region_access.region(s, (int) region);
        vfio_user_region_access.count(s, (int) data.byteSize());
        MemorySegment.copy(data, 0, s, vfio_user_region_access.data$offset(), data.byteSize());
    }

    public static void encode(Reply r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_region_access.offset(s, r.offset);
        vfio_user_region_access.region(s, (int) r.region);
        vfio_user_region_access.count(s, (int) r.count);
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "REGION_WRITE request");
        MemorySegment s = Payloads.view(in);
        long count = Integer.toUnsignedLong(vfio_user_region_access.count(s));
        Payloads.dataCount(count, in.readableBytes() - SIZE, maxDataXferSize, "REGION_WRITE request");
        in.skipBytes(in.readableBytes());
        return new Request(vfio_user_region_access.offset(s), Integer.toUnsignedLong(vfio_user_region_access.region(s)),
                s.asSlice(vfio_user_region_access.data$offset(), count).toArray(JAVA_BYTE));
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.exactly(in, SIZE, "REGION_WRITE reply");
        MemorySegment s = Payloads.view(in);
        in.skipBytes(SIZE);
        return new Reply(vfio_user_region_access.offset(s), Integer.toUnsignedLong(vfio_user_region_access.region(s)),
                Integer.toUnsignedLong(vfio_user_region_access.count(s)));
    }
}
