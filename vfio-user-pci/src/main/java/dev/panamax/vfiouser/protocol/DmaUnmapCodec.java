package dev.panamax.vfiouser.protocol;

import dev.panamax.vfiouser.bindings.vfio_user_dma_unmap;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

/**
 * {@code VFIO_USER_DMA_UNMAP} (spec, "VFIO_USER_DMA_UNMAP"): a range given with DMA_MAP is gone. Request and reply
 * payload {@link vfio_user_dma_unmap}, 24 bytes (as {@code struct vfio_iommu_type1_dma_unmap}): argsz, flags
 * (unused, 0), addr (DMA address), size (bytes). The server "responds with the original DMA entry in the request".
 */
public final class DmaUnmapCodec {
    /** {@code sizeof(struct vfio_user_dma_unmap)}. */
    public static final int SIZE = (int) vfio_user_dma_unmap.sizeof();

    private DmaUnmapCodec() {
    }

    /**
     * @param argsz   request: the largest reply payload wanted (at least 24); reply: the size of the full reply
     * @param flags   0 in this version of the protocol
     * @param address DMA address of a previous mapping
     * @param size    bytes, exactly as mapped
     */
    public record Unmap(long argsz, int flags, long address, long size) {
        public Unmap(long address, long size) {
            this(SIZE, 0, address, size);
        }
    }

    public static void encode(Unmap u, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_dma_unmap.argsz(s, (int) u.argsz);
        vfio_user_dma_unmap.flags(s, u.flags);
        vfio_user_dma_unmap.addr(s, u.address);
        vfio_user_dma_unmap.size(s, u.size);
    }

    /** Decodes a request or a reply. @throws VfioUserProtocolException EINVAL for a payload other than 24 bytes, argsz below 24, or flags */
    public static Unmap decode(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DMA_UNMAP");
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_dma_unmap.argsz(s));
        Payloads.argszAtLeast(argsz, SIZE, "DMA_UNMAP");
        int flags = vfio_user_dma_unmap.flags(s);
        Payloads.zero(flags, "DMA_UNMAP flags");
        in.skipBytes(SIZE);
        return new Unmap(argsz, flags, vfio_user_dma_unmap.addr(s), vfio_user_dma_unmap.size(s));
    }
}
