package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.MemFd;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.ReceivedFds;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;

import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE;

/**
 * Test helper (in the server's package for its package-private constructor): a {@link DeviceDma} with one
 * read-write DMA_MAP range over a whole {@link MemFd}, without a socket, for tests that drive a device model's
 * DMA directly. No DMA_READ/DMA_WRITE message is ever sent (an unmapped address is a {@link DmaException}).
 */
public final class TestDma {
    private TestDma() {
    }

    /** @return a DeviceDma where DMA addresses {@code [iova, iova + memory.size())} reach {@code memory}'s bytes */
    public static DeviceDma over(MemFd memory, long iova) {
        DeviceDma dma = new DeviceDma(new DeviceDma.Requester() {
            @Override
            public ReceivedMessage request(VfioUserCommand command, ByteBuf payload) {
                throw new AssertionError("TestDma sends no " + command);
            }

            @Override
            public long maxDataXferSize() {
                return 1 << 20;
            }
        }, 1, false);
        // ReceivedFds is not closed: the MemFd keeps its fd.
        dma.map(new DmaMapCodec.Request(VFIO_USER_F_DMA_REGION_READ() | VFIO_USER_F_DMA_REGION_WRITE(), 0, iova, memory.size()),
                new ReceivedFds(new int[]{memory.fd()}));
        return dma;
    }

    /** Unmaps (munmaps) the range {@link #over} made. */
    public static void close(DeviceDma dma, long iova, long size) {
        dma.unmap(new DmaUnmapCodec.Unmap(iova, size));
    }
}
