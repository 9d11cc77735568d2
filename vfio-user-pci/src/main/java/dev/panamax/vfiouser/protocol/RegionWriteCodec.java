package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_REGION_WRITE} (spec, "VFIO_USER_REGION_WRITE"): the client writes a device region.
 * <pre>
 *   request: 0 u64 offset   8 u32 region   12 u32 count (bytes)   16 data ({@code count} bytes)
 *   reply:   0 u64 offset   8 u32 region   12 u32 count (bytes written)
 * </pre>
 */
public final class RegionWriteCodec {
    public static final int SIZE = 16;

    private RegionWriteCodec() {
    }

    /** @param data the bytes to write; its length is the {@code count} field */
    public record Request(long offset, long region, byte[] data) {
        public Request {
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    /** @param count bytes written */
    public record Reply(long offset, long region, long count) {
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeLongLE(r.offset);
        out.writeIntLE((int) r.region);
        out.writeIntLE(r.data.length);
        out.writeBytes(r.data);
    }

    public static void encode(Reply r, ByteBuf out) {
        out.writeLongLE(r.offset);
        out.writeIntLE((int) r.region);
        out.writeIntLE((int) r.count);
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "REGION_WRITE request");
        long offset = in.readLongLE();
        long region = in.readUnsignedIntLE();
        long count = in.readUnsignedIntLE();
        Payloads.dataCount(count, in.readableBytes(), maxDataXferSize, "REGION_WRITE request");
        return new Request(offset, region, Payloads.bytes(in, (int) count));
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.exactly(in, SIZE, "REGION_WRITE reply");
        return new Reply(in.readLongLE(), in.readUnsignedIntLE(), in.readUnsignedIntLE());
    }
}
