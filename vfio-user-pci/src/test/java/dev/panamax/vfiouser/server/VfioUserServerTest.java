package dev.panamax.vfiouser.server;

import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.RegionWriteMultiCodec;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/** The server over a real socketpair, driven by {@link TestClient}. */
class VfioUserServerTest {
    static final long BAR0_SIZE = 4096;
    static final long BAR2_SIZE = 8192;
    /** BAR0 doorbells: write a u64 DMA address; the device DMA-writes PATTERN there / DMA-reads 16 bytes into BAR0 at 0x200. */
    static final int DOORBELL_DMA_WRITE = 0x100;
    static final int DOORBELL_DMA_READ = 0x108;
    static final byte[] PATTERN = "device wrote this via DMA".getBytes();
    static final long MEM_BASE = 0x40000;

    PciFunction config;
    byte[] bar0 = new byte[(int) BAR0_SIZE];
    MemFd bar2;
    AtomicInteger resets = new AtomicInteger();
    AtomicInteger disconnects = new AtomicInteger();
    VfioUserServer server;
    TestClient client;
    volatile DmaException dmaFailure;

    @BeforeEach
    void setUp() {
        config = VfioUserDevice.pciFunction("test", 0x4e58, 0x0001, 0x018000, 2);
        config.setBar(0, PciBar.memory32(BAR0_SIZE), null);
        config.setBar(2, PciBar.memory64(BAR2_SIZE, true), null);
        bar2 = new MemFd("bar2", BAR2_SIZE);
        RegionHandler bar0Handler = new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
                System.arraycopy(bar0, (int) offset, into, 0, into.length);
            }

            @Override
            public void write(long offset, byte[] data) {
                System.arraycopy(data, 0, bar0, (int) offset, data.length);
                long iova = ByteBuffer.wrap(bar0, (int) offset & ~7, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
                try {
                    if (offset == DOORBELL_DMA_WRITE) {
                        server.dma().write(iova, PATTERN);
                    } else if (offset == DOORBELL_DMA_READ) {
                        byte[] b = new byte[16];
                        server.dma().read(iova, b);
                        System.arraycopy(b, 0, bar0, 0x200, 16);
                    }
                } catch (DmaException e) {
                    dmaFailure = e;
                    throw e;
                }
            }
        };
        VfioUserDevice device = VfioUserDevice.builder(config)
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), BAR0_SIZE, bar0Handler))
                .region(VfioUserRegion.memfd(2, bar2))
                .irqs(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 1)
                .irqs(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 4)
                .onReset(resets::incrementAndGet)
                .onDisconnect(disconnects::incrementAndGet)
                .build();
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], device);
        client = new TestClient(pair[0], MEM_BASE, 0x1000);
        server.start();
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        client.close();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "server saw the disconnect");
        server.close();
        bar2.close();
    }

    static Set<String> openFds() {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    byte[] regionRead(long region, long offset, int count) {
        ByteBuf r = client.ok(VfioUserCommand.REGION_READ, payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(offset, region, count), b)));
        RegionReadCodec.Reply reply = RegionReadCodec.decodeReply(r, 1 << 20);
        assertEquals(offset, reply.offset());
        assertEquals(region, reply.region());
        return reply.data();
    }

    void regionWrite(long region, long offset, byte[] data) {
        ByteBuf r = client.ok(VfioUserCommand.REGION_WRITE, payload(b -> RegionWriteCodec.encode(new RegionWriteCodec.Request(offset, region, data), b)));
        assertEquals(new RegionWriteCodec.Reply(offset, region, data.length), RegionWriteCodec.decodeReply(r));
    }

    static byte[] le(long v, int width) {
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (v >>> (8 * i));
        }
        return b;
    }

    static long le(byte[] b) {
        long v = 0;
        for (int i = 0; i < b.length; i++) {
            v |= (b[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    @Test
    void versionNegotiation() {
        VersionCodec.Version v = client.version();
        assertEquals(0, v.major());
        assertEquals(0, v.minor());
        assertEquals(VfioUserServer.MAX_MSG_FDS, v.capabilities().maxMsgFds());
        assertEquals(VfioUserServer.MAX_DATA_XFER_SIZE, v.capabilities().maxDataXferSize());
        assertEquals(VfioUserServer.PGSIZES, v.capabilities().pgsizes());
        assertEquals(VfioUserServer.MAX_DMA_MAPS, v.capabilities().maxDmaMaps());
        assertEquals(Boolean.TRUE, v.capabilities().writeMultiple());
        assertEquals(8, server.clientCapabilities().maxMsgFds());
        assertEquals(1L << 16, server.clientCapabilities().maxDataXferSize());
        // A second VERSION is refused; so is any request before VERSION (tested below).
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.VERSION,
                payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0, null), b))));
    }

    @Test
    void requestBeforeVersionAndWrongMajorAreRefused() {
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_INFO, payload(b -> DeviceGetInfoCodec.encode(DeviceGetInfoCodec.DeviceInfo.request(), b))));
        assertEquals(Errno.EOPNOTSUPP, client.error(VfioUserCommand.VERSION,
                payload(b -> VersionCodec.encode(new VersionCodec.Version(1, 0, null), b))));
        assertEquals(0, client.version().major());
    }

    @Test
    void deviceInfoAndIrqInfo() {
        client.version();
        DeviceGetInfoCodec.DeviceInfo info = DeviceGetInfoCodec.decodeReply(client.ok(VfioUserCommand.DEVICE_GET_INFO,
                payload(b -> DeviceGetInfoCodec.encode(DeviceGetInfoCodec.DeviceInfo.request(), b))));
        assertEquals(new DeviceGetInfoCodec.DeviceInfo(16, dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_PCI() | dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_RESET(), 9, 5), info);
        long[] counts = {1, 0, 4, 0, 0};
        for (int i = 0; i < 5; i++) {
            int index = i;
            DeviceGetIrqInfoCodec.IrqInfo irq = DeviceGetIrqInfoCodec.decodeReply(client.ok(VfioUserCommand.DEVICE_GET_IRQ_INFO,
                    payload(b -> DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(index), b))));
            assertEquals(index, irq.index());
            assertEquals(counts[i], irq.count(), "IRQ index " + i);
            assertNotEquals(0, irq.flags() & dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_EVENTFD());
        }
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_IRQ_INFO,
                payload(b -> DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(5), b))));
    }

    DeviceGetRegionInfoCodec.Reply regionInfo(long index, ReceivedMessage[] keep) {
        ReceivedMessage m = client.call(VfioUserCommand.DEVICE_GET_REGION_INFO,
                payload(b -> DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(256, index), b)));
        assertFalse(m.header().isError(), "errno " + m.header().error());
        DeviceGetRegionInfoCodec.Reply r = DeviceGetRegionInfoCodec.decodeReply(m.payloadBuffer());
        DeviceGetRegionInfoCodec.checkFds(r.info(), m.fds().count());
        keep[0] = m;
        return r;
    }

    @Test
    void regionInfoTrappedAbsentAndConfig() {
        client.version();
        ReceivedMessage[] m = new ReceivedMessage[1];
        var bar0Info = regionInfo(0, m).info();
        m[0].close();
        assertEquals(BAR0_SIZE, bar0Info.size());
        assertEquals(dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_READ() | dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_WRITE(), bar0Info.flags());
        assertTrue(bar0Info.capabilities().isEmpty());
        var cfg = regionInfo(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), m).info();
        m[0].close();
        assertEquals(256, cfg.size());
        var absent = regionInfo(1, m).info();
        m[0].close();
        assertEquals(0, absent.size());
        assertEquals(0, absent.flags());
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_REGION_INFO,
                payload(b -> DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(32, 9), b))));
    }

    @Test
    void regionIoFdsAreAnEmptyListForARegionAndEinvalForNone() {
        client.version();
        // argsz big enough for sub-regions, and the minimal 16: both answer count 0 and no fds.
        for (long argsz : new long[]{16 + 40 * 4, 16}) {
            ByteBuf r = client.ok(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                    new DeviceGetRegionIoFdsCodec.Request(argsz, 0), b)));
            assertEquals(new DeviceGetRegionIoFdsCodec.Reply(16, 0, 0, List.of()), DeviceGetRegionIoFdsCodec.decodeReply(r));
        }
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                new DeviceGetRegionIoFdsCodec.Request(16, 1), b))));
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                new DeviceGetRegionIoFdsCodec.Request(16, 9), b))));
    }

    @Test
    void dmaMapFdsIgnoredWhenTheDeviceAsksForMessages() {
        client.version();
        try (MemFd guest = new MemFd("guest", 4096)) {
            UnixSocket[] pair = UnixSocket.pair();
            VfioUserServer s = new VfioUserServer(pair[1], VfioUserDevice.builder(VfioUserDevice.pciFunction("test", 1, 2, 3, 4)).dmaByMessages(true).build());
            s.start();
            try (TestClient c = new TestClient(pair[0], MEM_BASE, guest.mapping())) {
                c.version();
                c.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                        dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, MEM_BASE, 4096), b)), guest.fd());
                guest.mapping().set(JAVA_BYTE, 7, (byte) 0x5A);
                // The device's DMA runs on another thread while this one serves the DMA_READ it causes.
                var read = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                    byte[] b = new byte[8];
                    s.dma().read(MEM_BASE, b);
                    return b;
                });
                try (ReceivedMessage m = c.channel.receive(TestClient.T)) {
                    assertEquals(VfioUserCommand.DMA_READ, m.header().command());
                    var r = dev.panamax.vfiouser.protocol.DmaReadCodec.decodeRequest(m.payloadBuffer(), 1 << 20);
                    byte[] data = new byte[(int) r.count()];
                    MemorySegment.copy(guest.mapping(), JAVA_BYTE, r.address() - MEM_BASE, data, 0, data.length);
                    c.channel.sendReply(m.header(), payload(b -> dev.panamax.vfiouser.protocol.DmaReadCodec.encode(
                            new dev.panamax.vfiouser.protocol.DmaReadCodec.Reply(r.address(), data), b)));
                }
                assertEquals(0x5A, read.join()[7]);
            }
            s.close();
        }
    }

    @Test
    void memfdRegionIsMappedByTheClient() {
        client.version();
        bar2.mapping().set(JAVA_BYTE, 4100, (byte) 0x5A); // the device writes its BAR
        ReceivedMessage[] m = new ReceivedMessage[1];
        var info = regionInfo(2, m).info();
        try (ReceivedMessage reply = m[0]) {
            assertEquals(BAR2_SIZE, info.size());
            assertNotEquals(0, info.flags() & dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_MMAP());
            assertEquals(List.of(new VfioRegionInfo.SparseMmap(List.of(new VfioRegionInfo.Area(0, BAR2_SIZE)))),
                    info.capabilities());
            MemorySegment view = Libc.mmap(BAR2_SIZE, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, reply.fds().peek(0), info.offset(), "test BAR2");
            try {
                assertEquals(0x5A, view.get(JAVA_BYTE, 4100));
                view.set(JAVA_BYTE, 12, (byte) 0x77); // the client writes through its mapping
                assertEquals(0x77, bar2.mapping().get(JAVA_BYTE, 12));
            } finally {
                Libc.munmap(view);
            }
        }
        // The same region by messages.
        assertArrayEquals(new byte[]{0x5A}, regionRead(2, 4100, 1));
        regionWrite(2, 8000, new byte[]{1, 2, 3});
        assertEquals(3, bar2.mapping().get(JAVA_BYTE, 8002));
    }

    @Test
    void configSpaceReadAndMaskedWrites() {
        client.version();
        assertEquals(0x00014e58L, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 4)));
        assertEquals(0x018000L, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.CLASS_PROG, 3)));
        // Vendor ID is read-only; command takes only its writable bits.
        regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, le(0xFFFF, 2));
        assertEquals(0x4e58L, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 2)));
        regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, le(0xFFFF, 2));
        assertEquals(PciConfigSpace.COMMAND_IO | PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER | PciConfigSpace.COMMAND_PARITY
                | PciConfigSpace.COMMAND_SERR | PciConfigSpace.COMMAND_INTX_DISABLE, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, 2)));
        // BAR sizing: all ones reads back the size mask with the type bits.
        regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, le(0xFFFFFFFFL, 4));
        assertEquals(0xFFFFF000L, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4)));
        regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0 + 8, le(0xFFFFFFFFL, 4));
        assertEquals(0xFFFFE00CL, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0 + 8, 4)));
        regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0 + 12, le(0xFFFFFFFFL, 4));
        assertEquals(0xFFFFFFFFL, le(regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0 + 12, 4)));
    }

    @Test
    void trappedBarReachesTheCallbacksAndWriteMulti() {
        client.version();
        regionWrite(0, 0x40, new byte[]{9, 8, 7, 6});
        assertArrayEquals(new byte[]{9, 8, 7, 6}, Arrays.copyOfRange(bar0, 0x40, 0x44));
        bar0[0x80] = 0x42;
        assertArrayEquals(new byte[]{0x42, 0}, regionRead(0, 0x80, 2));
        ByteBuf r = client.ok(VfioUserCommand.REGION_WRITE_MULTI, payload(b -> RegionWriteMultiCodec.encode(List.of(
                new RegionWriteMultiCodec.Write(0x50, 0, new byte[]{1}),
                new RegionWriteMultiCodec.Write(0x58, 0, new byte[]{2, 3})), b)));
        assertEquals(2, RegionWriteMultiCodec.decodeReply(r));
        assertArrayEquals(new byte[]{1, 0, 0, 0, 0, 0, 0, 0, 2, 3}, Arrays.copyOfRange(bar0, 0x50, 0x5A));
    }

    @Test
    void outOfRangeAccessGetsEinvalAndTheServerGoesOn() {
        client.version();
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.REGION_READ,
                payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(BAR0_SIZE - 2, 0, 4), b))));
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.REGION_WRITE,
                payload(b -> RegionWriteCodec.encode(new RegionWriteCodec.Request(-8, 0, new byte[8]), b))));
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.REGION_READ,
                payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(0, 1, 4), b)))); // no BAR1
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.REGION_READ,
                payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(254, vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 4), b))));
        assertArrayEquals(new byte[]{0x58, 0x4e}, regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 2));
    }

    void setIrqs(int flags, int index, int start, int count, int... fds) {
        client.ok(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(
                new DeviceSetIrqsCodec.IrqSet(flags, index, start, count, new byte[0]), b)), fds);
    }

    @Test
    void eventfdsAreSignalledReplacedAndDeassigned() {
        client.version();
        int eventfdTrigger = dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
        EventFd[] e = {new EventFd(true), new EventFd(true), new EventFd(true), new EventFd(true)};
        try (EventFd replacement = new EventFd(true)) {
            setIrqs(eventfdTrigger, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 4, e[0].fd(), e[1].fd(), e[2].fd(), e[3].fd());
            assertTrue(server.irqs().trigger(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 2));
            assertTrue(server.irqs().trigger(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 2));
            assertEquals(2, e[2].read());
            assertEquals(0, e[0].read());
            // The client triggers through the server (DATA_NONE): loopback.
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 1, 1);
            assertEquals(1, e[1].read());
            // Replace vector 2; the old one is no longer signalled.
            setIrqs(eventfdTrigger, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 2, 1, replacement.fd());
            server.irqs().trigger(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 2);
            assertEquals(1, replacement.read());
            assertEquals(0, e[2].read());
            // De-assign vector 3 (no fds).
            setIrqs(eventfdTrigger, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 3, 1);
            assertFalse(server.irqs().trigger(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 3));
            assertEquals(0, e[3].read());
            // Vectors beyond the device's count are refused.
            assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(
                    new DeviceSetIrqsCodec.IrqSet(eventfdTrigger, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 3, 2, new byte[0]), b)), e[0].fd(), e[1].fd()));
            // start 0 count 0 DATA_NONE disables all.
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 0);
            assertFalse(server.irqs().assigned(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0));
        } finally {
            for (EventFd x : e) {
                x.close();
            }
        }
    }

    @Test
    void intxMaskHoldsTheInterruptUntilUnmask() {
        client.version();
        try (EventFd intx = new EventFd(true)) {
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1, intx.fd());
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_MASK(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1);
            assertFalse(server.irqs().trigger(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0));
            assertEquals(0, intx.read());
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_UNMASK(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1);
            assertEquals(1, intx.read());
            // MSI-X cannot be masked this way.
            assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(
                    new DeviceSetIrqsCodec.IrqSet(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_MASK(),
                            vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 1, new byte[0]), b))));
        }
    }

    /**
     * INTx as KVM's resample irqfd drives it: each signal automasks the line; the unmask eventfd (the guest's EOI)
     * unmasks it and, while the device still holds its INTx# level high, signals it again.
     */
    @Test
    void intxIsAutomaskedAndTheUnmaskEventfdRearmsALevelStillHigh() throws Exception {
        client.version();
        try (EventFd intx = new EventFd(true); EventFd unmask = new EventFd(true)) {
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1, intx.fd());
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_UNMASK(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1, unmask.fd());
            server.irqs().intx(true);
            assertEquals(1, intx.read());
            assertTrue(server.irqs().masked(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0), "signalled INTx masks itself");
            server.irqs().intx(false);
            server.irqs().intx(true); // a new assertion while masked waits for the unmask
            assertEquals(0, intx.read());
            unmask.signal(); // the EOI
            assertEquals(1, awaitCount(intx), "the unmask signals the line still high");
            server.irqs().intx(false);
            unmask.signal();
            awaitUnmasked();
            assertEquals(0, intx.read(), "a low line is not signalled on unmask");
            // Disabling INTx stops the watcher and closes the unmask eventfd the server held.
            setIrqs(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 0);
        }
        var info = DeviceGetIrqInfoCodec.decodeReply(client.ok(VfioUserCommand.DEVICE_GET_IRQ_INFO, payload(b ->
                DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(vfio_h.VFIO_PCI_INTX_IRQ_INDEX()), b))));
        assertTrue((info.flags() & dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_AUTOMASKED()) != 0, "INTx info says AUTOMASKED");
    }

    private static long awaitCount(EventFd fd) throws InterruptedException {
        for (int i = 0; i < 200; i++) {
            long n = fd.read();
            if (n != 0) {
                return n;
            }
            Thread.sleep(10);
        }
        return 0;
    }

    private void awaitUnmasked() throws InterruptedException {
        for (int i = 0; i < 200 && server.irqs().masked(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0); i++) {
            Thread.sleep(10);
        }
        assertFalse(server.irqs().masked(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0), "the unmask eventfd did not unmask INTx");
    }

    @Test
    void dmaThroughAMappedMemfd() {
        client.version();
        long iova = 0x100000;
        try (MemFd guest = new MemFd("guest", 4 * 4096)) {
            // The range starts one page into the memfd (DMA_MAP offsets must be page-aligned, issue 15).
            client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                    dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 4096, iova, 8192), b)), guest.fd());
            assertEquals(1, server.dma().count());
            regionWrite(0, DOORBELL_DMA_WRITE, le(iova + 100, 8));
            byte[] seen = new byte[PATTERN.length];
            MemorySegment.copy(guest.mapping(), JAVA_BYTE, 4096 + 100, seen, 0, seen.length);
            assertArrayEquals(PATTERN, seen);
            // Device reads what the client put there.
            guest.mapping().set(JAVA_BYTE, 4096 + 300, (byte) 0x33);
            regionWrite(0, DOORBELL_DMA_READ, le(iova + 300, 8));
            assertEquals(0x33, bar0[0x200]);
            assertEquals(0, client.dmaMessages, "mapped DMA needs no messages");
            // Unmap: later DMA there fails; unmapping again is an error.
            ByteBuf u = client.ok(VfioUserCommand.DMA_UNMAP, payload(b -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(iova, 8192), b)));
            assertEquals(new DmaUnmapCodec.Unmap(iova, 8192), DmaUnmapCodec.decode(u));
            assertThrows(DmaException.class, () -> server.dma().write(iova, new byte[1]));
            assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DMA_UNMAP, payload(b -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(iova, 8192), b))));
            assertEquals(Errno.EIO, client.error(VfioUserCommand.REGION_WRITE, payload(b -> RegionWriteCodec.encode(
                    new RegionWriteCodec.Request(DOORBELL_DMA_WRITE, 0, le(iova, 8)), b))));
            assertNotNull(dmaFailure);
        }
    }

    @Test
    void dmaThroughMessagesWithoutFd() {
        client.version();
        client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, MEM_BASE, client.memory.length), b)));
        regionWrite(0, DOORBELL_DMA_WRITE, le(MEM_BASE + 0x20, 8));
        assertArrayEquals(PATTERN, Arrays.copyOfRange(client.memory, 0x20, 0x20 + PATTERN.length));
        client.memory[0x400] = 0x11;
        client.memory[0x40F] = 0x22;
        regionWrite(0, DOORBELL_DMA_READ, le(MEM_BASE + 0x400, 8));
        assertEquals(0x11, bar0[0x200]);
        assertEquals(0x22, bar0[0x20F]);
        assertEquals(2, client.dmaMessages);
        // Overlapping maps are refused.
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ(), 0, MEM_BASE, 0x1000), b))));
    }

    @Test
    void dmaSpanningAMappedAndAMessageRangeAndReadOnlyMaps() {
        client.version();
        try (MemFd guest = new MemFd("guest", 4096); MemFd rom = new MemFd("rom", 4096)) {
            client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                    dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, MEM_BASE - 4096, 4096), b)), guest.fd());
            client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                    dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, MEM_BASE, client.memory.length), b)));
            // 10 bytes land in the memfd, the other 15 go by one DMA_WRITE message.
            regionWrite(0, DOORBELL_DMA_WRITE, le(MEM_BASE - 10, 8));
            byte[] head = new byte[10];
            MemorySegment.copy(guest.mapping(), JAVA_BYTE, 4086, head, 0, 10);
            assertArrayEquals(Arrays.copyOf(PATTERN, 10), head);
            assertArrayEquals(Arrays.copyOfRange(PATTERN, 10, PATTERN.length), Arrays.copyOf(client.memory, PATTERN.length - 10));
            assertEquals(1, client.dmaMessages);
            // A read-only mapping: mmapped PROT_READ, device writes are refused before touching it.
            rom.mapping().set(JAVA_BYTE, 5, (byte) 0x66);
            client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                    dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ(), 0, 0x800000, 4096), b)), rom.fd());
            byte[] one = new byte[1];
            server.dma().read(0x800005, one);
            assertEquals(0x66, one[0]);
            assertThrows(DmaException.class, () -> server.dma().write(0x800005, one));
            assertThrows(DmaException.class, () -> server.dma().read(0x801000, one));
        }
    }

    @Test
    void resetReachesTheCallback() {
        client.version();
        client.ok(VfioUserCommand.DEVICE_RESET, Unpooled.EMPTY_BUFFER);
        client.ok(VfioUserCommand.DEVICE_RESET, Unpooled.EMPTY_BUFFER);
        assertEquals(2, resets.get());
    }

    @Test
    void garbageGetsErrorRepliesAndTheServerGoesOn() {
        client.version();
        // An unknown command number: ENOSYS, the ID and number echoed.
        ByteBuf unknown = Unpooled.buffer();
        unknown.writeShortLE(77).writeShortLE(99).writeIntLE(20).writeIntLE(0).writeIntLE(0).writeIntLE(0xdeadbeef);
        client.sendRaw(unknown);
        try (ReceivedMessage m = receiveRawReply()) {
            assertEquals(77, m.header().messageId());
            assertEquals(Errno.ENOSYS, m.header().error());
        }
        // A payload of the wrong size: EINVAL.
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_INFO, Unpooled.wrappedBuffer(new byte[3])));
        // A reply where a command belongs is dropped; the server still answers.
        client.channel.send(VfioUserHeader.reply(5, VfioUserCommand.DMA_READ, 0), Unpooled.EMPTY_BUFFER);
        assertArrayEquals(new byte[]{0x58}, regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 1));
    }

    /** The server's reply to a command number the codecs do not know cannot be decoded by a MessageChannel; read it raw. */
    ReceivedMessage receiveRawReply() {
        try {
            return client.channel.receive(TestClient.T);
        } catch (dev.panamax.vfiouser.protocol.VfioUserProtocolException e) {
            // The channel refuses the unknown command number in the reply, naming it: that is the echo.
            assertEquals(99, e.command());
            return new ReceivedMessage(VfioUserHeader.errorReply(e.messageId(), VfioUserCommand.VERSION, Errno.ENOSYS),
                    new byte[0], new dev.panamax.vfiouser.transport.ReceivedFds(new int[0]));
        }
    }

    @Test
    void brokenSizeClosesCleanly() throws InterruptedException {
        client.version();
        ByteBuf bad = Unpooled.buffer();
        bad.writeShortLE(1).writeShortLE(4).writeIntLE(8).writeIntLE(0).writeIntLE(0); // size 8 < 16
        client.sendRaw(bad);
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)));
        assertEquals(1, disconnects.get());
    }
}
