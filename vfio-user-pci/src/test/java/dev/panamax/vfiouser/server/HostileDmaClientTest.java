package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.time.Duration;

import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ;
import static dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE;
import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A hostile client against the real server over a socketpair (issue 15, defect 10): a zero
 * max_data_xfer_size, DMA_MAP ranges past the fd's end, unaligned, overlapping across 2^63 or at
 * 2^64, and more than max_dma_maps of them. Each gets an error reply with its errno and the server
 * then answers a fresh request on the same connection.
 */
class HostileDmaClientTest {
    static final int RW = VFIO_USER_F_DMA_REGION_READ() | VFIO_USER_F_DMA_REGION_WRITE();
    VfioUserServer server;
    TestClient client;

    @BeforeEach
    void setUp() {
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], VfioUserDevice.builder(VfioUserDevice.pciFunction("test", 0x4e58, 1, 0x018000, 0)).build());
        client = new TestClient(pair[0], 0, 0);
        server.start();
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        client.close();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "server saw the disconnect");
        server.close();
    }

    /** A fresh request on the same connection gets a correct answer: the vendor ID from config space. */
    void stillServing() {
        ByteBuf r = client.ok(VfioUserCommand.REGION_READ, payload(b -> RegionReadCodec.encode(
                new RegionReadCodec.Request(0, vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 2), b)));
        byte[] data = RegionReadCodec.decodeReply(r, 1 << 20).data();
        assertArrayEquals(new byte[]{0x58, 0x4e}, data);
    }

    int map(long offset, long iova, long size, int... fds) {
        try (ReceivedMessage m = client.call(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(
                new DmaMapCodec.Request(RW, offset, iova, size), b)), fds)) {
            return m.header().isError() ? m.header().error() : 0;
        }
    }

    static ByteBuf version(long maxDataXferSize) {
        return payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0,
                new VersionCodec.Capabilities(8, maxDataXferSize, 4096L, 64, null, null)), b));
    }

    @Test
    void zeroOrTinyMaxDataXferSizeIsRefusedAtVersion() {
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.VERSION, version(0)));
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.VERSION, version(VersionCodec.MIN_MAX_DATA_XFER_SIZE - 1)));
        assertNull(server.clientCapabilities(), "a refused VERSION negotiates nothing");
        // The connection still negotiates with a sane value.
        client.ok(VfioUserCommand.VERSION, version(VersionCodec.MIN_MAX_DATA_XFER_SIZE));
        assertEquals(VersionCodec.MIN_MAX_DATA_XFER_SIZE, server.clientCapabilities().maxDataXferSize());
        stillServing();
    }

    @Test
    void theChunkingLoopCannotSpinOnAZeroTransferSize() {
        DeviceDma dma = new DeviceDma(new DeviceDma.Requester() {
            @Override
            public ReceivedMessage request(VfioUserCommand command, ByteBuf payload) {
                throw new AssertionError("no message may be sent with a transfer size of 0");
            }

            @Override
            public long maxDataXferSize() {
                return 0;
            }
        }, 16, false);
        dma.map(new DmaMapCodec.Request(RW, 0, 0x10000, 0x1000), new dev.panamax.vfiouser.transport.ReceivedFds(new int[0]));
        DmaException e = assertTimeoutPreemptively(Duration.ofSeconds(5),
                () -> assertThrows(DmaException.class, () -> dma.read(0x10000, new byte[16])));
        assertTrue(e.getMessage().contains("max_data_xfer_size"), e.getMessage());
    }

    @Test
    void dmaMapPastTheFdsEndIsRefused() {
        client.version();
        try (MemFd guest = new MemFd("guest", 2 * 4096)) {
            assertEquals(Errno.EINVAL, map(0, 0x100000, 3 * 4096, guest.fd()), "size past the end");
            assertEquals(Errno.EINVAL, map(4096, 0x100000, 2 * 4096, guest.fd()), "offset + size past the end");
            assertEquals(Errno.EINVAL, map(3 * 4096, 0x100000, 4096, guest.fd()), "offset past the end");
            assertEquals(Errno.EINVAL, map(-4096L, 0x100000, 2 * 4096, guest.fd()), "offset + size wraps");
            assertEquals(0, server.dma().count());
            stillServing();
            // The whole fd, and its second page alone, are fine.
            assertEquals(0, map(0, 0x100000, 2 * 4096, guest.fd()));
            assertEquals(0, map(4096, 0x200000, 4096, guest.fd()));
            guest.mapping().set(JAVA_BYTE, 4096 + 5, (byte) 0x42);
            byte[] one = new byte[1];
            server.dma().read(0x200005, one);
            assertEquals(0x42, one[0]);
        }
    }

    @Test
    void unalignedDmaMapIsRefused() {
        client.version();
        try (MemFd guest = new MemFd("guest", 4 * 4096)) {
            assertEquals(Errno.EINVAL, map(0, 0x100010, 4096, guest.fd()), "iova");
            assertEquals(Errno.EINVAL, map(0, 0x100000, 4095, guest.fd()), "size");
            assertEquals(Errno.EINVAL, map(16, 0x100000, 4096, guest.fd()), "offset");
            assertEquals(Errno.EINVAL, map(0, 0x100800, 0x1000), "iova, without fd");
            assertEquals(Errno.EINVAL, map(0, 0x100000, 0), "empty");
            assertEquals(0, server.dma().count());
            stillServing();
        }
    }

    @Test
    void rangesCompareUnsignedAcross2To63And2To64() {
        client.version();
        assertEquals(0, map(0, 0x7FFF_FFFF_FFFF_F000L, 0x2000), "a range across 2^63");
        assertEquals(Errno.EINVAL, map(0, 0x8000_0000_0000_0000L, 0x1000), "overlaps the range across 2^63 from above it");
        assertEquals(Errno.EINVAL, map(0, 0x7FFF_FFFF_FFFF_E000L, 0x2000), "overlaps the range across 2^63 from below");
        assertEquals(0, map(0, 0xFFFF_FFFF_FFFF_F000L, 0x1000), "the last page below 2^64");
        assertEquals(Errno.EINVAL, map(0, 0xFFFF_FFFF_FFFF_E000L, 0x2000), "overlaps the last page");
        assertEquals(Errno.EINVAL, map(0, 0xFFFF_FFFF_FFFF_F000L, 0x2000), "wraps at 2^64");
        assertEquals(0, map(0, 0, 0x1000), "page 0");
        assertEquals(3, server.dma().count());
        stillServing();
        try (MemFd top = new MemFd("top", 4096); MemFd zero = new MemFd("zero", 4096)) {
            client.ok(VfioUserCommand.DMA_UNMAP, payload(b -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(0xFFFF_FFFF_FFFF_F000L, 0x1000), b)));
            client.ok(VfioUserCommand.DMA_UNMAP, payload(b -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(0, 0x1000), b)));
            assertEquals(0, map(0, 0xFFFF_FFFF_FFFF_F000L, 0x1000, top.fd()));
            assertEquals(0, map(0, 0, 0x1000, zero.fd()));
            // A device access running past 2^64 must not wrap around to DMA address 0.
            assertThrows(DmaException.class, () -> server.dma().read(0xFFFF_FFFF_FFFF_FFF0L, new byte[32]));
            assertThrows(DmaException.class, () -> server.dma().write(0xFFFF_FFFF_FFFF_FFF0L, new byte[32]));
            assertEquals(0, zero.mapping().get(JAVA_BYTE, 0), "nothing was written at 0");
            server.dma().write(0xFFFF_FFFF_FFFF_FFF0L, new byte[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
            assertEquals(16, top.mapping().get(JAVA_BYTE, 4095));
            assertTrue(server.dma().mapped(0x7FFF_FFFF_FFFF_FFFFL));
            assertTrue(server.dma().mapped(0x8000_0000_0000_0FFFL));
            assertFalse(server.dma().mapped(0x8000_0000_0000_1000L));
        }
    }

    @Test
    void moreThanMaxDmaMapsIsEnospc() {
        VersionCodec.Version v = client.version();
        int max = v.capabilities().maxDmaMaps();
        for (int i = 0; i < max; i++) {
            assertEquals(0, map(0, 0x1000L * i, 0x1000), "map " + i);
        }
        assertEquals(Errno.ENOSPC, map(0, 0x1000L * max, 0x1000));
        stillServing();
        client.ok(VfioUserCommand.DMA_UNMAP, payload(b -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(0, 0x1000), b)));
        assertEquals(0, map(0, 0x1000L * max, 0x1000));
        assertEquals(max, server.dma().count());
    }

    @Test
    void aMappedRangeIsReadAndWrittenThroughTheMemfd() {
        client.version();
        try (MemFd guest = new MemFd("guest", 4096)) {
            assertEquals(0, map(0, 0x40000, 4096, guest.fd()));
            server.dma().write(0x40ffc, new byte[]{9, 8, 7, 6});
            assertEquals(6, guest.mapping().get(JAVA_BYTE, 4095));
            byte[] b = new byte[4];
            MemorySegment.copy(new byte[]{1, 2, 3, 4}, 0, guest.mapping(), JAVA_BYTE, 0, 4);
            server.dma().read(0x40000, b);
            assertArrayEquals(new byte[]{1, 2, 3, 4}, b);
            assertThrows(DmaException.class, () -> server.dma().read(0x40ffc, new byte[8]), "runs past the range");
        }
    }
}
