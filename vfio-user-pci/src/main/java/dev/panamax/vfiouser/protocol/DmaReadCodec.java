package dev.panamax.vfiouser.protocol;

import dev.panamax.vfiouser.bindings.vfio_user_dma_region_access;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_DMA_READ} (spec, "VFIO_USER_DMA_READ"), server -&gt; client: the server reads client memory it was
 * given with DMA_MAP but cannot mmap. Request and reply are {@link vfio_user_dma_region_access} (addr: DMA address,
 * count: bytes, a u64), the reply followed by the {@code count} bytes. QEMU's {@code VFIOUserDMARW} has a 32-bit
 * count and data at offset 12; we follow the spec's tables (count is 8 bytes, data at 16).
 */
public final class DmaReadCodec {
    /** {@code sizeof(struct vfio_user_dma_region_access)}. */
    public static final int SIZE = (int) vfio_user_dma_region_access.sizeof();

    private DmaReadCodec() {
    }

    /** @param address DMA address; @param count bytes */
    public record Request(long address, long count) {
    }

    /** @param data the bytes read (held, not copied); its length is the {@code count} field */
    public record Reply(long address, byte[] data) {
    }

    public static void encode(Request r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_dma_region_access.addr(s, r.address);
        vfio_user_dma_region_access.count(s, r.count);
    }

    public static void encode(Reply r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE + r.data.length);
        vfio_user_dma_region_access.addr(s, r.address);
        vfio_user_dma_region_access.count(s, r.data.length);
        MemorySegment.copy(r.data, 0, s, JAVA_BYTE, vfio_user_dma_region_access.data$offset(), r.data.length);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 16 bytes, E2BIG for a count above {@code maxDataXferSize} */
    public static Request decodeRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.exactly(in, SIZE, "DMA_READ request");
        MemorySegment s = Payloads.view(in);
        in.skipBytes(SIZE);
        Request r = new Request(vfio_user_dma_region_access.addr(s), vfio_user_dma_region_access.count(s));
        Payloads.countLimit(r.count, maxDataXferSize, "DMA_READ");
        return r;
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or count differs from the data, E2BIG above {@code maxDataXferSize} */
    public static Reply decodeReply(ByteBuf in, long maxDataXferSize) {
        Payloads.atLeast(in, SIZE, "DMA_READ reply");
        MemorySegment s = Payloads.view(in);
        long count = vfio_user_dma_region_access.count(s);
        Payloads.countLimit(count, maxDataXferSize, "DMA_READ reply");
        Payloads.dataCount(count, in.readableBytes() - SIZE, maxDataXferSize, "DMA_READ reply");
        in.skipBytes(in.readableBytes());
        return new Reply(vfio_user_dma_region_access.addr(s),
                s.asSlice(vfio_user_dma_region_access.data$offset(), count).toArray(JAVA_BYTE));
    }
}
