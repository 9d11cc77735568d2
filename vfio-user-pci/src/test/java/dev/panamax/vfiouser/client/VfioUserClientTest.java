package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfio.DmaMemoryListener;
import dev.panamax.vfio.VfioDeviceInfo;
import dev.panamax.vfio.VfioIrqInfo;
import dev.panamax.vfio.VfioIrqSet;
import dev.panamax.vfio.VfioPciFunction;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.PciBar;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.server.DmaException;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserRegion;
import dev.panamax.vfiouser.server.VfioUserServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The client against the real {@link VfioUserServer} over a real UNIX socket (both in this process, the server on
 * its own threads): every {@link dev.panamax.vfio.VfioDeviceIo} operation, DMA both ways, splitting and posted writes.
 */
@Timeout(30)
class VfioUserClientTest {
    static final int BAR0_SIZE = 4096;
    static final int BAR2_SIZE = 8192;
    static final int BAR4_SIZE = 64 * 1024;
    /** BAR0 doorbells: write a u64 DMA address; the device DMA-writes PATTERN there / DMA-reads 16 bytes into BAR0 at 0x200. */
    static final int DOORBELL_DMA_WRITE = 0x100;
    static final int DOORBELL_DMA_READ = 0x108;
    static final byte[] PATTERN = "device wrote this via DMA".getBytes();
    static final long RAM_GPA = 0x100000;
    static final long RAM_SIZE = 64 * 1024;
    static final long RAM_FD_OFFSET = 0x4000;

    @TempDir
    Path dir;
    PciFunction config;
    final byte[] bar0 = new byte[BAR0_SIZE];
    final byte[] bar4 = new byte[BAR4_SIZE];
    /** Every BAR0 write as offset and length, in the order the device saw them. */
    final List<long[]> bar0Writes = new CopyOnWriteArrayList<>();
    final List<String> bar4Accesses = new CopyOnWriteArrayList<>();
    final AtomicInteger resets = new AtomicInteger();
    MemFd bar2;
    VfioUserServer server;
    VfioUserClient client;
    volatile DmaException dmaFailure;
    List<String> fdsBefore;

    void start(VfioUserClient.Options options) throws Exception {
        fdsBefore = Fds.open();
        config = VfioUserDevice.pciFunction("test", 0x4e58, 0x0002, 0x018000, 1);
        config.setBar(0, PciBar.memory32(BAR0_SIZE), null);
        config.setBar(2, PciBar.memory64(BAR2_SIZE, true), null);
        config.setBar(4, PciBar.memory32(BAR4_SIZE), null);
        bar2 = new MemFd("bar2", BAR2_SIZE);
        RegionHandler bar0Handler = new RegionHandler() {
            @Override
            public synchronized void read(long offset, byte[] into) {
                System.arraycopy(bar0, (int) offset, into, 0, into.length);
            }

            @Override
            public synchronized void write(long offset, byte[] data) {
                bar0Writes.add(new long[]{offset, data.length});
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
        RegionHandler bar4Handler = new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
                bar4Accesses.add("r" + offset + "+" + into.length);
                System.arraycopy(bar4, (int) offset, into, 0, into.length);
            }

            @Override
            public void write(long offset, byte[] data) {
                bar4Accesses.add("w" + offset + "+" + data.length);
                System.arraycopy(data, 0, bar4, (int) offset, data.length);
            }
        };
        VfioUserDevice device = VfioUserDevice.builder(config)
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), BAR0_SIZE, bar0Handler))
                .region(VfioUserRegion.memfd(2, bar2))
                .region(VfioUserRegion.trapped(4, BAR4_SIZE, bar4Handler))
                .irqs(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 1)
                .irqs(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 4)
                .onReset(resets::incrementAndGet)
                .build();
        Path socket = dir.resolve("dev.sock");
        CompletableFuture<VfioUserServer> accepted = CompletableFuture.supplyAsync(() -> {
            VfioUserServer s = VfioUserServer.accept(socket, device, Duration.ofSeconds(10));
            s.start();
            return s;
        });
        client = connectWhenListening(socket, options);
        server = accepted.get();
    }

    /** Connects once the server listens (its socket file appears at bind, a moment before listen). */
    static VfioUserClient connectWhenListening(Path socket, VfioUserClient.Options options) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (true) {
            try {
                return VfioUserClient.connect(socket, options);
            } catch (dev.panamax.core.sys.LinuxException e) {
                if (System.nanoTime() - deadline > 0) {
                    throw e;
                }
                Thread.sleep(1);
            }
        }
    }

    @AfterEach
    void tearDown() throws Exception {
        if (client != null) {
            client.close();
            client.close(); // idempotent
            assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "the server saw the client go");
            server.close();
            bar2.close();
            assertFalse(client.isBroken(), "a well-behaved server does not break the client: " + client.brokenReason());
            // Threads that end after close() (the server's INTx unmask watcher) may close their fd a moment later.
            for (int i = 0; i < 100 && !Fds.open().equals(fdsBefore); i++) {
                Thread.sleep(50);
            }
            assertEquals(fdsBefore, Fds.open(), "sockets, memfds and eventfds after close");
        Fds.assertNoClientThread();
        }
    }

    static MemorySegment bytes(Arena arena, byte[] b) {
        MemorySegment s = arena.allocate(b.length);
        MemorySegment.copy(b, 0, s, JAVA_BYTE, 0, b.length);
        return s;
    }

    @Test
    void negotiatesCapabilitiesBothWays() throws Exception {
        start(VfioUserClient.Options.defaults().withMaxDataXferSize(64 * 1024));
        VersionCodec.Capabilities s = client.serverCapabilities();
        assertEquals(VfioUserServer.MAX_MSG_FDS, s.effectiveMaxMsgFds());
        assertEquals(VfioUserServer.MAX_DATA_XFER_SIZE, s.effectiveMaxDataXferSize());
        assertEquals(VfioUserServer.PGSIZES, s.effectivePgsizes());
        assertEquals(VfioUserServer.MAX_DMA_MAPS, s.effectiveMaxDmaMaps());
        assertEquals(64 * 1024, client.maxDataXferSize(), "the smaller of ours and the server's");
        VersionCodec.Capabilities c = server.clientCapabilities();
        assertEquals(VfioUserClient.MAX_MSG_FDS, c.maxMsgFds());
        assertEquals(64 * 1024, c.maxDataXferSize());
        assertNull(c.migration(), "no migration offered");
        assertTrue(client.name().contains("dev.sock"), client.name());
    }

    @Test
    void infoCalls() throws Exception {
        start(VfioUserClient.Options.defaults());
        VfioDeviceInfo info = client.deviceInfo();
        assertTrue(info.isPci());
        assertTrue(info.canReset());
        assertEquals(9, info.numRegions());
        assertEquals(5, info.numIrqs());

        VfioRegionInfo bar0Info = client.regionInfo(0);
        assertEquals(new VfioRegionInfo(0, 3, BAR0_SIZE, 0, List.of()), bar0Info);
        assertFalse(bar0Info.mmappable());
        VfioRegionInfo bar2Info = client.regionInfo(2);
        assertTrue(bar2Info.mmappable() && bar2Info.readable() && bar2Info.writable());
        assertEquals(BAR2_SIZE, bar2Info.size());
        assertEquals(List.of(new VfioRegionInfo.Area(0, BAR2_SIZE)), bar2Info.mmapAreas());
        assertEquals(0, client.regionInfo(1).size(), "absent BAR");
        assertEquals(256, client.regionInfo(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()).size());
        // Asking twice keeps one fd (the tear-down counts them).
        assertEquals(bar2Info, client.regionInfo(2));

        VfioIrqInfo msix = client.irqInfo(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX());
        assertEquals(4, msix.count());
        assertTrue(msix.eventfd());
        assertEquals(1, client.irqInfo(vfio_h.VFIO_PCI_INTX_IRQ_INDEX()).count());
        assertTrue(client.irqInfo(vfio_h.VFIO_PCI_INTX_IRQ_INDEX()).maskable());
        assertEquals(0, client.irqInfo(vfio_h.VFIO_PCI_MSI_IRQ_INDEX()).count());

        VfioUserClientException e = assertThrows(VfioUserClientException.class, () -> client.irqInfo(7));
        assertEquals(dev.panamax.core.sys.Errno.EINVAL, e.errno());
        assertTrue(e.getMessage().contains("dev.sock") && e.getMessage().contains("IRQ index 7"), e.getMessage());
        assertFalse(client.isBroken(), "an error reply is no breakage");
    }

    @Test
    void configSpaceReadAndWrite() throws Exception {
        start(VfioUserClient.Options.defaults());
        assertEquals(0x4e58, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.VENDOR_ID, 2));
        assertEquals(0x0002, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.DEVICE_ID, 2));
        assertEquals(0x00024e58L, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 4));
        client.regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, 2, 0x0006);
        assertEquals(0x0006, config.configRead(PciConfigSpace.COMMAND, 2), "a config write is done when it returns");
        assertEquals(0x0006, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, 2));
        // BAR sizing through the client, as the PCI model does it.
        client.regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4, 0xFFFFFFFFL);
        assertEquals(0xFFFFF000L, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4));
        assertEquals(0, client.outstandingPostedWrites());
    }

    @Test
    void trappedBarReadAndWrite() throws Exception {
        start(VfioUserClient.Options.defaults());
        client.regionWrite(0, 0x10, 4, 0xCAFEF00DL);
        client.regionWrite(0, 0x18, 8, 0x0123456789ABCDEFL);
        assertEquals(0xCAFEF00DL, client.regionRead(0, 0x10, 4));
        assertEquals(0x0123456789ABCDEFL, client.regionRead(0, 0x18, 8));
        assertEquals(0xEF, client.regionRead(0, 0x18, 1));
        assertEquals(0xCAFEF00D, ByteBuffer.wrap(bar0, 0x10, 4).order(ByteOrder.LITTLE_ENDIAN).getInt());
    }

    @Test
    void memfdBarIsMmappedThroughTheClient() throws Exception {
        start(VfioUserClient.Options.defaults());
        MemorySegment map = client.mmap(2, 0, BAR2_SIZE);
        try {
            map.set(JAVA_LONG_UNALIGNED, 0x80, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, bar2.mapping().get(JAVA_LONG_UNALIGNED, 0x80), "the server sees the client's store");
            bar2.mapping().set(JAVA_INT_UNALIGNED, 0x1000, 0x5A5A1234);
            assertEquals(0x5A5A1234, map.get(JAVA_INT_UNALIGNED, 0x1000), "the client sees the server's store");
            assertEquals(0x5A5A1234L, client.regionRead(2, 0x1000, 4), "and so does a message read");
        } finally {
            Libc.munmap(map);
        }
        MemorySegment second = client.mmap(2, 0x1000, 0x1000);
        assertEquals(0x5A5A1234, second.get(JAVA_INT_UNALIGNED, 0), "the offset within the region is honoured");
        Libc.munmap(second);
        assertThrows(IllegalArgumentException.class, () -> client.mmap(2, 0, 3 * 4096), "beyond the mmap area");
        assertThrows(IllegalArgumentException.class, () -> client.mmap(2, 100, 4096), "not page aligned");
        assertThrows(IllegalArgumentException.class, () -> client.mmap(0, 0, 4096), "trapped region");
    }

    @Test
    void setIrqsPassesEventfdsAndTheServerSignalsThem() throws Exception {
        start(VfioUserClient.Options.defaults());
        EventFd[] e = {new EventFd(true), new EventFd(true), new EventFd(true), new EventFd(true)};
        try {
            client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, e[0].fd(), e[1].fd(), e[2].fd(), e[3].fd()));
            for (int v = 0; v < 4; v++) {
                assertTrue(server.irqs().assigned(2, v));
                assertTrue(server.irqs().trigger(2, v));
            }
            server.irqs().trigger(2, 3);
            assertArrayEquals(new long[]{1, 1, 1, 2}, Arrays.stream(e).mapToLong(EventFd::read).toArray());
            // -1 de-assigns: sent as a request without fds, the others with theirs.
            client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 1, -1, e[2].fd()));
            assertFalse(server.irqs().assigned(2, 1));
            assertTrue(server.irqs().assigned(2, 2));
            // INTx mask / unmask, no data.
            client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, e[0].fd()));
            client.setIrqs(VfioIrqSet.none(VfioIrqSet.Action.MASK, vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1));
            assertTrue(server.irqs().masked(0, 0));
            assertFalse(server.irqs().trigger(0, 0));
            client.setIrqs(VfioIrqSet.none(VfioIrqSet.Action.UNMASK, vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1));
            assertEquals(1, e[0].read(), "the pending INTx fires on unmask");
            client.setIrqs(VfioIrqSet.disable(2));
            assertFalse(server.irqs().assigned(2, 2));
            assertThrows(VfioUserClientException.class,
                    () -> client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 3, e[0].fd(), e[1].fd())),
                    "vectors beyond the device's 4");
        } finally {
            for (EventFd f : e) {
                f.close();
            }
        }
    }

    @Test
    void reset() throws Exception {
        start(VfioUserClient.Options.defaults());
        client.reset();
        client.reset();
        assertEquals(2, resets.get());
    }

    /** Guest RAM in a memfd, at an offset in it, as the machine builds it. */
    record Ram(MemFd memFd, RamRegion region, AddressSpace space) implements AutoCloseable {
        static Ram create() {
            MemFd m = new MemFd("guest-ram", RAM_FD_OFFSET + RAM_SIZE);
            RamRegion r = new RamRegion("ram", RAM_GPA, RAM_SIZE, m.mapping().asSlice(RAM_FD_OFFSET, RAM_SIZE), m.fd(), RAM_FD_OFFSET);
            AddressSpace space = new AddressSpace();
            space.add(r);
            return new Ram(m, r, space);
        }

        MemorySegment host() {
            return region.host();
        }

        @Override
        public void close() {
            memFd.close();
        }
    }

    @Test
    void dmaMapWithMemfdLetsTheServerReachGuestRam() throws Exception {
        start(VfioUserClient.Options.defaults());
        try (Ram ram = Ram.create()) {
            DmaMemoryListener listener = new DmaMemoryListener(client.dma());
            ram.space().addListener(listener);
            assertEquals(1, server.dma().count());
            assertTrue(server.dma().mapped(RAM_GPA) && server.dma().mapped(RAM_GPA + RAM_SIZE - 1));
            assertFalse(server.dma().mapped(RAM_GPA + RAM_SIZE));

            ram.host().set(JAVA_LONG_UNALIGNED, 0x10, 0x0BADC0FFEE0DDF00L);
            byte[] got = new byte[8];
            server.dma().read(RAM_GPA + 0x10, got);
            assertEquals(0x0BADC0FFEE0DDF00L, ByteBuffer.wrap(got).order(ByteOrder.LITTLE_ENDIAN).getLong(), "server reads guest RAM");
            server.dma().write(RAM_GPA + 0x2000, PATTERN);
            assertArrayEquals(PATTERN, ram.host().asSlice(0x2000, PATTERN.length).toArray(JAVA_BYTE), "server writes guest RAM");

            // Device-initiated, through a posted doorbell write; the read after it sees it done.
            client.regionWrite(0, DOORBELL_DMA_WRITE, 8, RAM_GPA + 0x3000);
            client.regionRead(0, 0, 4);
            assertArrayEquals(PATTERN, ram.host().asSlice(0x3000, PATTERN.length).toArray(JAVA_BYTE));
            assertEquals(1, client.dma().count());
            assertEquals(0, client.dma().requestsServed(), "with the memfd the server needs no DMA messages");

            ram.space().removeListener(listener);
            assertEquals(0, server.dma().count(), "DMA_UNMAP on removal");
            assertEquals(0, client.dma().count());
            assertNull(dmaFailure);
        }
    }

    @Test
    void dmaWithoutFdsGoesThroughTheClientsDmaReadAndWrite() throws Exception {
        start(VfioUserClient.Options.defaults().withPostedWrites(false).withDmaFds(false));
        try (Ram ram = Ram.create()) {
            DmaMemoryListener listener = new DmaMemoryListener(client.dma());
            ram.space().addListener(listener);
            assertEquals(1, server.dma().count());
            ram.host().set(JAVA_LONG_UNALIGNED, 0x40, 0x7766554433221100L);
            byte[] got = new byte[8];
            server.dma().read(RAM_GPA + 0x40, got);
            assertEquals(1, client.dma().requestsServed(), "the read came as a DMA_READ message");
            assertEquals(0x7766554433221100L, ByteBuffer.wrap(got).order(ByteOrder.LITTLE_ENDIAN).getLong());
            server.dma().write(RAM_GPA + RAM_SIZE - PATTERN.length, PATTERN);
            assertArrayEquals(PATTERN, ram.host().asSlice(RAM_SIZE - PATTERN.length, PATTERN.length).toArray(JAVA_BYTE));

            // A large transfer, split by the server at our max_data_xfer_size.
            byte[] big = new byte[40000];
            new java.util.Random(7).nextBytes(big);
            server.dma().write(RAM_GPA + 0x100, big);
            assertArrayEquals(big, ram.host().asSlice(0x100, big.length).toArray(JAVA_BYTE));

            // Device-initiated while the client waits for the doorbell write's reply: the receive thread serves the
            // DMA_READ meanwhile.
            ram.host().asSlice(0x5000, 16).fill((byte) 0x3C);
            client.regionWrite(0, DOORBELL_DMA_READ, 8, RAM_GPA + 0x5000);
            byte[] expected = new byte[16];
            Arrays.fill(expected, (byte) 0x3C);
            assertArrayEquals(expected, Arrays.copyOfRange(bar0, 0x200, 0x210));
            client.regionWrite(0, DOORBELL_DMA_WRITE, 8, RAM_GPA + 0x6000);
            assertArrayEquals(PATTERN, ram.host().asSlice(0x6000, PATTERN.length).toArray(JAVA_BYTE));
            assertNull(dmaFailure);

            ram.space().removeListener(listener);
            assertEquals(0, server.dma().count());
            assertThrows(DmaException.class, () -> server.dma().read(RAM_GPA, new byte[4]), "unmapped");
        }
    }

    /** The first page of {@code ram}'s memory as a region at {@code gpa}, without fd. */
    static RamRegion page(Ram ram, long gpa) {
        return new RamRegion("page", gpa, 4096, ram.host().asSlice(0, 4096), -1, 0);
    }

    @Test
    void dmaIsCheckedAgainstTheMappedProtection() throws Exception {
        start(VfioUserClient.Options.defaults());
        try (Ram ram = Ram.create()) {
            // Read-only, without fd: the server must ask; the client serves reads, the server refuses writes itself.
            client.dma().dmaMap(RAM_GPA, new RamRegion("ram", RAM_GPA, RAM_SIZE, ram.host(), -1, 0), DmaBackend.READ);
            byte[] b = new byte[4];
            server.dma().read(RAM_GPA, b);
            assertThrows(DmaException.class, () -> server.dma().write(RAM_GPA, b));
            assertThrows(IllegalArgumentException.class,
                    () -> client.dma().dmaMap(RAM_GPA + 4096, page(ram, RAM_GPA + 4096), DmaBackend.READ), "overlap");
            assertThrows(IllegalArgumentException.class,
                    () -> client.dma().dmaMap(RAM_GPA + RAM_SIZE + 100, page(ram, RAM_GPA + RAM_SIZE + 100), DmaBackend.READ),
                    "not page aligned");
            client.dma().dmaUnmap(RAM_GPA, RAM_SIZE);
            assertEquals(0, client.dma().count());
        }
    }

    @Test
    void largeAccessesAreSplitByMaxDataXferSize() throws Exception {
        start(VfioUserClient.Options.defaults().withMaxDataXferSize(4096));
        assertEquals(4096, client.maxDataXferSize());
        byte[] data = new byte[20000];
        new java.util.Random(1).nextBytes(data);
        try (Arena arena = Arena.ofConfined()) {
            client.regionWrite(4, 0x100, bytes(arena, data));
            MemorySegment back = arena.allocate(data.length);
            client.regionRead(4, 0x100, back);
            assertArrayEquals(data, back.toArray(JAVA_BYTE));
        }
        assertArrayEquals(data, Arrays.copyOfRange(bar4, 0x100, 0x100 + data.length));
        List<String> expected = new ArrayList<>();
        for (String op : List.of("w", "r")) {
            for (int at = 0; at < data.length; at += 4096) {
                expected.add(op + (0x100 + at) + "+" + Math.min(4096, data.length - at));
            }
        }
        assertEquals(expected, bar4Accesses);
    }

    @Test
    void postedWritesAreOrderedBeforeALaterReadAndBounded() throws Exception {
        start(VfioUserClient.Options.defaults().withMaxPostedWrites(4));
        int maxSeen = 0;
        for (int i = 0; i < 500; i++) {
            client.regionWrite(0, 0x40 + 8 * (i % 8), 8, i);
            maxSeen = Math.max(maxSeen, client.outstandingPostedWrites());
        }
        // The read is answered after every write before it: the last values are there.
        for (int slot = 0; slot < 8; slot++) {
            int last = slot + 8 * ((499 - slot) / 8);
            assertEquals(last, client.regionRead(0, 0x40 + 8 * slot, 8), "slot " + slot);
        }
        assertEquals(500, bar0Writes.size(), "every posted write reached the device before the read");
        for (int i = 0; i < 500; i++) {
            assertEquals(0x40 + 8 * (i % 8), bar0Writes.get(i)[0], "write " + i + " in order");
        }
        assertTrue(maxSeen <= 4, "at most 4 posted writes in flight, saw " + maxSeen);
        client.flushPostedWrites();
        assertEquals(0, client.outstandingPostedWrites());
        assertEquals(0, client.postedWriteErrors());
    }

    @Test
    void aFailedPostedWriteIsCountedAndReported() throws Exception {
        start(VfioUserClient.Options.defaults());
        client.regionWrite(0, BAR0_SIZE - 2, 4, 0x12345678); // crosses the end: the server refuses
        client.regionWrite(0, 0, 4, 1);
        VfioUserClientException e = assertThrows(VfioUserClientException.class, client::flushPostedWrites);
        assertTrue(e.getMessage().contains("REGION_WRITE of 4 bytes at 0xffe of region 0") && e.getMessage().contains("EINVAL"),
                e.getMessage());
        assertEquals(1, client.postedWriteErrors());
        client.flushPostedWrites(); // reported once
        assertEquals(1, client.regionRead(0, 0, 4));
        assertFalse(client.isBroken());
    }

    @Test
    void thePciModelRunsOverTheClient() throws Exception {
        start(VfioUserClient.Options.defaults());
        List<String> msi = new CopyOnWriteArrayList<>();
        VfioPciFunction f = new VfioPciFunction(client, new MsiListener() {
            @Override
            public void onVectorChanged(int vector, long address, int data, boolean masked) {
                msi.add("changed " + vector);
            }

            @Override
            public void onMessage(int vector, long address, int data) {
                msi.add("message " + vector);
            }
        });
        assertEquals(0x00024e58, f.configRead(0, 4));
        assertEquals(PciBar.memory32(BAR0_SIZE), f.bar(0));
        assertEquals(PciBar.memory64(BAR2_SIZE, true), f.bar(2));
        assertEquals(PciBar.memory32(BAR4_SIZE), f.bar(4));
        f.region(0).write(0x20, 4, 0xA5A5A5A5L);
        assertEquals(0xA5A5A5A5L, f.region(0).read(0x20, 4));
        assertEquals(0xA5A5A5A5, ByteBuffer.wrap(bar0, 0x20, 4).order(ByteOrder.LITTLE_ENDIAN).getInt());
    }

    @Test
    void closedClientReadsAllOnes() throws Exception {
        start(VfioUserClient.Options.defaults());
        client.close();
        assertEquals(0xFFFFFFFFL, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 4));
        client.regionWrite(0, 0, 4, 0); // dropped
        assertThrows(VfioUserDeviceBrokenException.class, client::deviceInfo);
    }
}
