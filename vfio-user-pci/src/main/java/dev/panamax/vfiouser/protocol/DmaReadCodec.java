package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DMA_READ} (spec, "VFIO_USER_DMA_READ"), server -&gt; client: the server reads
 * client memory it was given with DMA_MAP but cannot mmap.
 * <pre>
 *   request: 0 u64 address (DMA address)   8 u64 count (bytes)
 *   reply:   0 u64 address   8 u64 count   16 data ({@code count} bytes)
 * </pre>
 * QEMU's {@code VFIOUserDMARW} has a 32-bit count and data at offset 12; we follow the spec's
 * tables ("VFIO_USER_DMA_READ": count is 8 bytes, data at 16).
 */
public final class DmaReadCodec {
    public static final int SIZE = 16;

    private DmaReadCodec() {
    }

    /** @param address DMA address; @param count bytes */
    public record Request(long address, long count) {
    }

    /** @param data the bytes read; its length is the {@code count} field */
    public record Reply(long address, byte[] data) {
        public Reply {
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeLongLE(r.address);
        out.writeLongLE(r.count);
    }

    public static void encode(Reply r, ByteBuf out) {
        out.writeLongLE(r.address);
        out.writeLongLE(r.data.length);
        out.writeBytes(r.data);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, E2BIG for a count above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.exactly(in, SIZE, "DMA_READ request");
        Request r = new Request(in.readLongLE(), in.readLongLE());
        Payloads.countLimit(r.count, maxDataXferSize, "DMA_READ");
        return r;
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Reply decodeReply(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "DMA_READ reply");
        long address = in.readLongLE();
        long count = in.readLongLE();
        Payloads.countLimit(count, maxDataXferSize, "DMA_READ reply");
        Payloads.dataCount(count, in.readableBytes(), maxDataXferSize, "DMA_READ reply");
        return new Reply(address, Payloads.bytes(in, (int) count));
    }
}
