package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DMA_WRITE} (spec, "VFIO_USER_DMA_WRITE"), server -&gt; client: the server writes
 * client memory it was given with DMA_MAP but cannot mmap.
 * <pre>
 *   request: 0 u64 address (DMA address)   8 u64 count (bytes)   16 data ({@code count} bytes)
 *   reply:   0 u64 address   8 u32 count (bytes written)          (12 bytes)
 * </pre>
 * The spec's reply table gives {@code count} 4 bytes although the request's is 8; we follow the
 * table. QEMU instead uses a 32-bit count at 8 with data at 12 in the request and replies with
 * the header alone; the spec ("VFIO_USER_DMA_WRITE") wins here.
 */
public final class DmaWriteCodec {
    public static final int SIZE = 16;
    public static final int REPLY_SIZE = 12;

    private DmaWriteCodec() {
    }

    /** @param data the bytes to write; its length is the {@code count} field */
    public record Request(long address, byte[] data) {
        public Request {
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    /** @param count bytes written (u32) */
    public record Reply(long address, long count) {
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeLongLE(r.address);
        out.writeLongLE(r.data.length);
        out.writeBytes(r.data);
    }

    public static void encode(Reply r, ByteBuf out) {
        out.writeLongLE(r.address);
        out.writeIntLE((int) r.count);
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "DMA_WRITE request");
        long address = in.readLongLE();
        long count = in.readLongLE();
        Payloads.countLimit(count, maxDataXferSize, "DMA_WRITE request");
        Payloads.dataCount(count, in.readableBytes(), maxDataXferSize, "DMA_WRITE request");
        return new Request(address, Payloads.bytes(in, (int) count));
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 12 bytes */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.exactly(in, REPLY_SIZE, "DMA_WRITE reply");
        return new Reply(in.readLongLE(), in.readUnsignedIntLE());
    }
}
