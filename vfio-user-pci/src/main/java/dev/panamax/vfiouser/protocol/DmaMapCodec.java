package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

/**
 * {@code VFIO_USER_DMA_MAP} (spec, "VFIO_USER_DMA_MAP"): the client tells the server about a
 * range of its memory. Request payload, 32 bytes, mirroring {@code struct vfio_iommu_type1_dma_map}
 * with {@code vaddr} replaced by the file offset:
 * <pre>
 *   0 u32 argsz (32)   4 u32 flags (bit 0 readable, bit 1 writeable)
 *   8 u64 offset (in the fd, 0 if none)   16 u64 address (DMA address)   24 u64 size (bytes)
 * </pre>
 * One fd (SCM_RIGHTS) comes with it when the server may mmap the range. The reply has no payload.
 */
public final class DmaMapCodec {
    public static final int SIZE = 32;
    public static final int FLAG_READ = 1 << 0;
    public static final int FLAG_WRITE = 1 << 1;

    private DmaMapCodec() {
    }

    /**
     * @param flags   {@link #FLAG_READ} | {@link #FLAG_WRITE}
     * @param offset  byte offset of the range in the passed fd, or 0 without fd
     * @param address the DMA (guest-physical) address of the range
     * @param size    bytes
     */
    public record Request(int flags, long offset, long address, long size) {
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeIntLE(SIZE);
        out.writeIntLE(r.flags);
        out.writeLongLE(r.offset);
        out.writeLongLE(r.address);
        out.writeLongLE(r.size);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload or argsz other than 32 bytes, or undefined flags */
    public static Request decode(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DMA_MAP request");
        long argsz = in.readUnsignedIntLE();
        if (argsz != SIZE) {
            // "argsz is the size of the above structure" (there is no reply payload to size).
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA_MAP argsz " + argsz + ", must be 32");
        }
        int flags = in.readIntLE();
        if ((flags & ~(FLAG_READ | FLAG_WRITE)) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, String.format("DMA_MAP undefined flags 0x%x", flags));
        }
        return new Request(flags, in.readLongLE(), in.readLongLE(), in.readLongLE());
    }

    /**
     * Checks the fds that came with a request: at most one ("If the DMA region being added can be
     * directly mapped by the server, a file descriptor must be sent"); without one, the offset must be 0
     * ("or zero if the region is not mappable").
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(Request r, int fdCount) {
        if (fdCount > 1) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA_MAP came with " + fdCount + " fds, at most 1");
        }
        if (fdCount == 0 && r.offset != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA_MAP without fd has offset " + r.offset + ", must be 0");
        }
    }
}
