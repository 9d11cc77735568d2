package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DMA_UNMAP} (spec, "VFIO_USER_DMA_UNMAP"): a range given with DMA_MAP is gone.
 * Request and reply payload, 24 bytes, mirroring {@code struct vfio_iommu_type1_dma_unmap}:
 * <pre>
 *   0 u32 argsz   4 u32 flags (unused, 0)   8 u64 address (DMA address)   16 u64 size (bytes)
 * </pre>
 * The server "responds with the original DMA entry in the request".
 */
public final class DmaUnmapCodec {
    public static final int SIZE = 24;

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
        out.writeIntLE((int) u.argsz);
        out.writeIntLE(u.flags);
        out.writeLongLE(u.address);
        out.writeLongLE(u.size);
    }

    /** Decodes a request or a reply. @throws VfioUserProtocolException EINVAL for a payload other than 24 bytes, argsz below 24, or flags */
    public static Unmap decode(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DMA_UNMAP");
        long argsz = in.readUnsignedIntLE();
        Payloads.argszAtLeast(argsz, SIZE, "DMA_UNMAP");
        int flags = in.readIntLE();
        Payloads.zero(flags, "DMA_UNMAP flags");
        return new Unmap(argsz, flags, in.readLongLE(), in.readLongLE());
    }
}
