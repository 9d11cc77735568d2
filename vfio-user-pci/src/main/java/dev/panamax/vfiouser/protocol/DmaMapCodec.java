package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_dma_map;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE;

/**
 * {@code VFIO_USER_DMA_MAP} (spec, "VFIO_USER_DMA_MAP"): the client tells the server about a range of its memory.
 * Request payload {@link vfio_user_dma_map} (32 bytes, {@code struct vfio_iommu_type1_dma_map} with {@code vaddr}
 * replaced by the file offset): argsz (32), flags ({@code VFIO_USER_F_DMA_REGION_READ}/{@code _WRITE} of
 * {@code vfio_user_h}), offset (in the fd, 0 if none), addr (DMA address), size (bytes). One fd (SCM_RIGHTS) comes
 * with it when the server may mmap the range. The reply has no payload.
 */
public final class DmaMapCodec {
    /** {@code sizeof(struct vfio_user_dma_map)}. */
    public static final int SIZE = (int) vfio_user_dma_map.sizeof();

    private DmaMapCodec() {
    }

    /**
     * @param flags   VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE
     * @param offset  byte offset of the range in the passed fd, or 0 without fd
     * @param address the DMA (guest-physical) address of the range
     * @param size    bytes
     */
    public record Request(int flags, long offset, long address, long size) {
    }

    public static void encode(Request r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_dma_map.argsz(s, SIZE);
        vfio_user_dma_map.flags(s, r.flags);
        vfio_user_dma_map.offset(s, r.offset);
        vfio_user_dma_map.addr(s, r.address);
        vfio_user_dma_map.size(s, r.size);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload or argsz other than 32 bytes, or undefined flags */
    public static Request decode(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DMA_MAP request");
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_dma_map.argsz(s));
        if (argsz != SIZE) {
            // "argsz is the size of the above structure" (there is no reply payload to size).
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA_MAP argsz " + argsz + ", must be 32");
        }
        int flags = vfio_user_dma_map.flags(s);
        if ((flags & ~(VFIO_USER_F_DMA_REGION_READ() | VFIO_USER_F_DMA_REGION_WRITE())) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, String.format("DMA_MAP undefined flags 0x%x", flags));
        }
        in.skipBytes(SIZE);
        return new Request(flags, vfio_user_dma_map.offset(s), vfio_user_dma_map.addr(s), vfio_user_dma_map.size(s));
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
