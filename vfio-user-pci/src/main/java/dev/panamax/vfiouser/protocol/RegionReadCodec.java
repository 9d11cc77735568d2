package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_REGION_READ} (spec, "VFIO_USER_REGION_READ"): the client reads a device region.
 * <pre>
 *   request: 0 u64 offset (in the region)   8 u32 region (index)   12 u32 count (bytes)
 *   reply:   the same 16 bytes, then 16 data ({@code count} bytes read)
 * </pre>
 * {@code count} must not exceed the peer's {@code max_data_xfer_size}.
 */
public final class RegionReadCodec {
    public static final int SIZE = 16;

    private RegionReadCodec() {
    }

    /** @param offset byte offset in the region; @param region region index; @param count bytes */
    public record Request(long offset, long region, long count) {
    }

    /** @param data the bytes read; its length is the {@code count} field */
    public record Reply(long offset, long region, byte[] data) {
        public Reply {
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeLongLE(r.offset);
        out.writeIntLE((int) r.region);
        out.writeIntLE((int) r.count);
    }

    public static void encode(Reply r, ByteBuf out) {
        out.writeLongLE(r.offset);
        out.writeIntLE((int) r.region);
        out.writeIntLE(r.data.length);
        out.writeBytes(r.data);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, E2BIG for a count above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.exactly(in, SIZE, "REGION_READ request");
        Request r = new Request(in.readLongLE(), in.readUnsignedIntLE(), in.readUnsignedIntLE());
        Payloads.countLimit(r.count, maxDataXferSize, "REGION_READ");
        return r;
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Reply decodeReply(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "REGION_READ reply");
        long offset = in.readLongLE();
        long region = in.readUnsignedIntLE();
        long count = in.readUnsignedIntLE();
        Payloads.dataCount(count, in.readableBytes(), maxDataXferSize, "REGION_READ reply");
        return new Reply(offset, region, Payloads.bytes(in, (int) count));
    }
}
