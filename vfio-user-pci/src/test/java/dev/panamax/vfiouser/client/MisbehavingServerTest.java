package dev.panamax.vfiouser.client;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfio.VfioIrqSet;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaReadCodec;
import dev.panamax.vfiouser.protocol.DmaWriteCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The client against small fake servers that misbehave: for each way, the call in progress returns promptly, the
 * client is broken (one ERROR line, the listener told once), later reads are all-ones, info calls throw, and after
 * close no socket, memfd or eventfd is left open.
 */
@Timeout(20)
class MisbehavingServerTest {
    static final Duration TIMEOUT = Duration.ofMillis(300);

    @TempDir
    Path dir;
    List<String> fdsBefore;
    ListAppender<ILoggingEvent> log;
    Logger clientLogger;
    final List<String> brokenReasons = new CopyOnWriteArrayList<>();
    FakeServer server;
    VfioUserClient client;

    @BeforeEach
    void setUp() {
        fdsBefore = Fds.open();
        clientLogger = (Logger) LoggerFactory.getLogger(VfioUserClient.class.getPackageName()); // the client and its parts
        log = new ListAppender<>();
        log.start();
        clientLogger.addAppender(log);
    }

    @AfterEach
    void tearDown() throws Exception {
        clientLogger.detachAppender(log);
        if (client != null) {
            client.close();
            client.close();
        }
        if (server != null) {
            server.close();
        }
        assertEquals(fdsBefore, Fds.open(), "sockets, memfds and eventfds after close");
        Fds.assertNoClientThread();
    }

    VfioUserClient.Options options() {
        return VfioUserClient.Options.defaults().withRequestTimeout(TIMEOUT)
                .withOnBroken((c, why) -> brokenReasons.add(why));
    }

    void start(FakeServer.Handler handler) throws InterruptedException {
        server = new FakeServer(dir.resolve("fake.sock"), FakeServer.caps(16, 1 << 20), handler);
        client = VfioUserClientTest.connectWhenListening(server.path, options());
    }

    /** A REGION_READ of 4 bytes of region 0 that the server breaks: returns all-ones, promptly. */
    void readBreaks(String expectedReason) {
        long t0 = System.nanoTime();
        assertEquals(0xFFFFFFFFL, client.regionRead(0, 0, 4));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms < 3000, "the read returned after " + ms + " ms");
        assertBroken(expectedReason);
    }

    void assertBroken(String expectedReason) {
        assertTrue(client.isBroken());
        assertTrue(client.brokenReason().contains(expectedReason), client.brokenReason());
        assertEquals(0xFFFFFFFFFFFFFFFFL, client.regionRead(0, 8, 8), "later reads are all-ones");
        assertEquals(0xFFL, client.regionRead(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 1));
        client.regionWrite(0, 0, 4, 1); // dropped
        client.regionWrite(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 4, 2, 1); // dropped
        client.setIrqs(VfioIrqSet.disable(2)); // dropped
        client.reset(); // dropped
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class, client::deviceInfo);
        assertTrue(e.getMessage().contains("fake.sock") && e.getMessage().contains(expectedReason), e.getMessage());
        assertThrows(VfioUserDeviceBrokenException.class, () -> client.regionInfo(0));
        assertThrows(VfioUserDeviceBrokenException.class, () -> client.mmap(2, 0, 4096));
        List<ILoggingEvent> errors = log.list.stream().filter(ev -> ev.getLevel() == Level.ERROR).toList();
        assertEquals(1, errors.size(), "one ERROR line: " + errors);
        String line = errors.getFirst().getFormattedMessage();
        assertTrue(line.contains(server.path.toString()) && line.contains(expectedReason), line);
        // The listener runs on the thread that noticed, after the waiters were woken: give it a moment.
        long t0 = System.nanoTime();
        while (brokenReasons.isEmpty() && System.nanoTime() - t0 < 2_000_000_000L) {
            Thread.onSpinWait();
        }
        assertEquals(List.of(client.brokenReason()), brokenReasons, "the listener is told once");
    }

    static ByteBuf readReply(ReceivedMessage m, int dataBytes) {
        RegionReadCodec.Request r = RegionReadCodec.decodeRequest(m.payloadBuffer(), 1 << 20);
        ByteBuf out = Unpooled.buffer();
        RegionReadCodec.encode(new RegionReadCodec.Reply(r.offset(), r.region(), new byte[dataBytes]), out);
        return out;
    }

    @Test
    void serverDiesMidRequest() throws Exception {
        start((m, s) -> s.hangUp());
        readBreaks("closed the connection");
    }

    @Test
    void serverStallsPastTheTimeout() throws Exception {
        start((m, s) -> { /* never answers */ });
        readBreaks("no reply to REGION_READ of 4 bytes at 0x0 of region 0 within 300 ms");
    }

    @Test
    void serverStallsOnAPostedWrite() throws Exception {
        start((m, s) -> { /* never answers */ });
        client.regionWrite(0, 0, 4, 7); // posted: returns at once
        long t0 = System.nanoTime();
        while (!client.isBroken()) {
            assertTrue(System.nanoTime() - t0 < 3_000_000_000L, "the receive thread notices the missing reply");
            Thread.sleep(5);
        }
        assertBroken("no reply to posted REGION_WRITE");
        assertEquals(0, client.outstandingPostedWrites());
    }

    @Test
    void replyWithAWrongId() throws Exception {
        start((m, s) -> s.sendRaw(FakeServer.replyBytes(m.header().messageId() + 1, m.header().command(), readReply(m, 4))));
        readBreaks("answers no request we sent");
    }

    @Test
    void replyForAnotherCommand() throws Exception {
        start((m, s) -> s.sendRaw(FakeServer.replyBytes(m.header().messageId(), VfioUserCommand.REGION_WRITE, readReply(m, 4))));
        readBreaks("is for REGION_WRITE");
    }

    @Test
    void replyOfTheWrongSize() throws Exception {
        start((m, s) -> s.reply(m.header(), readReply(m, 2)));
        readBreaks("the reply has 2 bytes");
    }

    @Test
    void replyWithAPayloadShorterThanItsFields() throws Exception {
        start((m, s) -> s.reply(m.header(), Unpooled.wrappedBuffer(new byte[5])));
        readBreaks("bad reply");
    }

    @Test
    void replyWithTooManyFds() throws Exception {
        try (MemFd a = new MemFd("a", 4096); MemFd b = new MemFd("b", 4096); MemFd c = new MemFd("c", 4096)) {
            start((m, s) -> {
                ByteBuf p = Unpooled.buffer();
                DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(2,
                        vfio_h.VFIO_REGION_INFO_FLAG_READ() | vfio_h.VFIO_REGION_INFO_FLAG_MMAP(), 4096, 0, List.of()), 1024, p);
                s.sendRaw(FakeServer.replyBytes(m.header().messageId(), m.header().command(), p), a.fd(), b.fd(), c.fd());
            });
            long t0 = System.nanoTime();
            assertThrows(VfioUserDeviceBrokenException.class, () -> client.regionInfo(2));
            assertTrue(System.nanoTime() - t0 < 3_000_000_000L);
            // Within our max_msg_fds (16, for GET_REGION_IO_FDS replies) but more than a region info reply carries.
            assertBroken("3 fds, the command carries at most 1");
        }
    }

    @Test
    void replyWithMoreFdsThanMaxMsgFds() throws Exception {
        try (MemFd a = new MemFd("a", 4096)) {
            int[] fds = new int[VfioUserClient.MAX_MSG_FDS + 1];
            java.util.Arrays.fill(fds, a.fd());
            start((m, s) -> {
                ByteBuf p = Unpooled.buffer();
                DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(2,
                        vfio_h.VFIO_REGION_INFO_FLAG_READ() | vfio_h.VFIO_REGION_INFO_FLAG_MMAP(), 4096, 0, List.of()), 1024, p);
                s.sendRaw(FakeServer.replyBytes(m.header().messageId(), m.header().command(), p), fds);
            });
            assertThrows(VfioUserDeviceBrokenException.class, () -> client.regionInfo(2));
            assertBroken((VfioUserClient.MAX_MSG_FDS + 1) + " fds exceed max_msg_fds " + VfioUserClient.MAX_MSG_FDS);
        }
    }

    /**
     * A region fd smaller than the region it maps (issue 15, defect 2): mmapped, the client's (or the guest's) access
     * past the file's end would be SIGBUS. The client checks the fd's size (fstat) when the reply comes and breaks
     * the device with one line; so does a sparse area outside the region (defect 3).
     */
    @Test
    void aRegionFdSmallerThanTheRegionIsRefused() throws Exception {
        try (MemFd small = new MemFd("small", 4096)) {
            start((m, s) -> {
                ByteBuf p = Unpooled.buffer();
                DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(2,
                        vfio_h.VFIO_REGION_INFO_FLAG_READ() | vfio_h.VFIO_REGION_INFO_FLAG_MMAP(), 8192, 0, List.of()), 1024, p);
                s.sendRaw(FakeServer.replyBytes(m.header().messageId(), m.header().command(), p), small.fd());
            });
            assertThrows(VfioUserDeviceBrokenException.class, () -> client.regionInfo(2));
            assertBroken("4096 bytes");
            assertFalse(client.brokenReason().contains("\n"), client.brokenReason());
        }
    }

    @Test
    void aSparseAreaOutsideItsRegionIsRefused() throws Exception {
        try (MemFd bar = new MemFd("bar", 8192)) {
            start((m, s) -> {
                ByteBuf p = Unpooled.buffer();
                DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(2, vfio_h.VFIO_REGION_INFO_FLAG_READ()
                        | vfio_h.VFIO_REGION_INFO_FLAG_MMAP() | vfio_h.VFIO_REGION_INFO_FLAG_CAPS(), 8192, 0,
                        List.of(new VfioRegionInfo.SparseMmap(List.of(new VfioRegionInfo.Area(4096, 8192))))), 1024, p);
                s.sendRaw(FakeServer.replyBytes(m.header().messageId(), m.header().command(), p), bar.fd());
            });
            assertThrows(VfioUserDeviceBrokenException.class, () -> client.regionInfo(2));
            assertBroken("outside region 2");
        }
    }

    @Test
    void fdWithAReplyThatCarriesNone() throws Exception {
        try (EventFd e = new EventFd(true)) {
            start((m, s) -> s.sendRaw(FakeServer.replyBytes(m.header().messageId(), m.header().command(), readReply(m, 4)), e.fd()));
            readBreaks("the command carries at most 0");
        }
    }

    @Test
    void garbageBytes() throws Exception {
        start((m, s) -> {
            byte[] junk = new byte[64];
            java.util.Arrays.fill(junk, (byte) 0xA5);
            s.sendRaw(Unpooled.wrappedBuffer(junk));
        });
        readBreaks("bad message from the server");
    }

    @Test
    void aTruncatedMessageThenSilence() throws Exception {
        start((m, s) -> {
            ByteBuf whole = FakeServer.replyBytes(m.header().messageId(), m.header().command(), readReply(m, 4));
            s.sendRaw(whole.slice(0, 20)); // the header promises 36 bytes
        });
        // Whichever notices first: the receive thread (the message's end never came) or the waiter (no reply).
        readBreaks("within");
    }

    @Test
    void serverClosesBeforeVersion() throws Exception {
        server = new FakeServer(dir.resolve("fake.sock"), null, (m, s) -> { });
        long t0 = System.nanoTime();
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class,
                () -> VfioUserClientTest.connectWhenListening(server.path, options()));
        assertTrue(System.nanoTime() - t0 < 3_000_000_000L);
        assertTrue(e.getMessage().contains("closed the connection"), e.getMessage());
    }

    @Test
    void serverDiesWhileIdle() throws Exception {
        CountDownLatch told = new CountDownLatch(1);
        server = new FakeServer(dir.resolve("fake.sock"), FakeServer.caps(16, 1 << 20), (m, s) -> { });
        client = VfioUserClientTest.connectWhenListening(server.path, options().withOnBroken((c, why) -> {
            brokenReasons.add(why);
            told.countDown();
        }));
        server.close();
        assertTrue(told.await(3, TimeUnit.SECONDS), "the listener is told without any request in flight");
        assertBroken("closed the connection");
    }

    @Test
    void serverThatStopsReadingCannotHangTheClient() throws Exception {
        java.util.concurrent.atomic.AtomicBoolean asked = new java.util.concurrent.atomic.AtomicBoolean();
        start((m, s) -> {
            if (m.header().command() == VfioUserCommand.DMA_MAP) {
                s.reply(m.header(), Unpooled.EMPTY_BUFFER);
            } else if (!asked.getAndSet(true)) {
                // Ask for 1 MiB of guest RAM, then stop reading: the client's next 1 MiB write and its DMA reply
                // both fill the socket.
                ByteBuf read = Unpooled.buffer();
                DmaReadCodec.encode(new DmaReadCodec.Request(0x100000, 1 << 20), read);
                s.channel().sendCommand(900, VfioUserCommand.DMA_READ, false, read);
                Thread.sleep(1500);
            }
        });
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            client.dma().dmaMap(0x100000, new RamRegion("ram", 0x100000, 1 << 20, arena.allocate(1 << 20), -1, 0),
                    DmaBackend.READ | DmaBackend.WRITE);
            long t0 = System.nanoTime();
            client.regionWrite(0, 0, arena.allocate(2 << 20)); // two posted 1 MiB writes
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms < 3000, "the write returned after " + ms + " ms");
            assertBroken("no reply to posted REGION_WRITE of 1048576 bytes");
        }
    }

    /**
     * Issue 15, defect 1: a server that streams DMA_WRITE requests and never reads the replies. The client's queue
     * of server requests is bounded and so is the wait to send a reply: the device is broken (one line), the flood
     * is cut off (the server's sends fail), and nothing is left open.
     */
    @Test
    void serverFloodingDmaWritesWithoutReadingIsCutOff() throws Exception {
        java.util.concurrent.atomic.AtomicInteger sent = new java.util.concurrent.atomic.AtomicInteger();
        int flood = 1000;
        start((m, s) -> {
            if (m.header().isReply()) {
                return; // the replies to the flood, read only once it is over
            }
            if (m.header().command() == VfioUserCommand.DMA_MAP) {
                s.reply(m.header(), Unpooled.EMPTY_BUFFER);
                return;
            }
            s.reply(m.header(), readReply(m, 4));
            byte[] data = new byte[64 << 10];
            for (int i = 0; i < flood; i++) {
                ByteBuf w = Unpooled.buffer();
                DmaWriteCodec.encode(new DmaWriteCodec.Request(0x100000, data), w);
                s.channel().sendCommand((1000 + i) & 0xFFFF, VfioUserCommand.DMA_WRITE, false, w);
                sent.incrementAndGet();
            }
        });
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            client.dma().dmaMap(0x100000, new RamRegion("ram", 0x100000, 1 << 20, arena.allocate(1 << 20), -1, 0),
                    DmaBackend.READ | DmaBackend.WRITE);
            assertEquals(0, client.regionRead(0, 0, 4));
            long t0 = System.nanoTime();
            while (!client.isBroken() && System.nanoTime() - t0 < 5_000_000_000L) {
                Thread.sleep(5);
            }
            assertTrue(client.isBroken(), "the client still serves a server that never reads; it took "
                    + sent.get() + " of " + flood + " DMA_WRITEs of 64 KiB");
            assertBroken("does not read its socket");
            assertTrue(sent.get() < flood, "the flood was cut off, not absorbed: " + sent.get());
        }
    }

    /**
     * Issue 15, defect 1: a server that asks for 1 MiB by DMA_READ and then never reads its socket: the reply cannot
     * be sent, and after the request timeout the device is broken (one line) instead of a thread blocked forever.
     */
    @Test
    void serverThatNeverReadsADmaReplyBreaksTheDeviceAtTheDeadline() throws Exception {
        start((m, s) -> {
            if (m.header().command() == VfioUserCommand.DMA_MAP) {
                s.reply(m.header(), Unpooled.EMPTY_BUFFER);
            } else if (m.header().command() == VfioUserCommand.REGION_READ) {
                s.reply(m.header(), readReply(m, 4));
                ByteBuf read = Unpooled.buffer();
                DmaReadCodec.encode(new DmaReadCodec.Request(0x100000, 1 << 20), read);
                s.channel().sendCommand(900, VfioUserCommand.DMA_READ, false, read);
                Thread.sleep(3000); // and read nothing meanwhile
            }
        });
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
            client.dma().dmaMap(0x100000, new RamRegion("ram", 0x100000, 1 << 20, arena.allocate(1 << 20), -1, 0),
                    DmaBackend.READ | DmaBackend.WRITE);
            assertEquals(0, client.regionRead(0, 0, 4));
            long t0 = System.nanoTime();
            while (!client.isBroken() && System.nanoTime() - t0 < 2_500_000_000L) {
                Thread.sleep(5);
            }
            assertTrue(client.isBroken(), "the reply to DMA_READ waits forever to be sent");
            assertBroken("not sent within 300 ms");
        }
    }

    @Test
    void serverDmaOutsideTheMappedRangesGetsEfault() throws Exception {
        List<int[]> answers = new CopyOnWriteArrayList<>();
        CountDownLatch done = new CountDownLatch(1);
        start((m, s) -> {
            // On the client's first request, DMA at addresses it never mapped, then answer it.
            ByteBuf read = Unpooled.buffer();
            DmaReadCodec.encode(new DmaReadCodec.Request(0x1000, 16), read);
            s.channel().sendCommand(500, VfioUserCommand.DMA_READ, false, read);
            ByteBuf write = Unpooled.buffer();
            DmaWriteCodec.encode(new DmaWriteCodec.Request(0x2000, new byte[8]), write);
            s.channel().sendCommand(501, VfioUserCommand.DMA_WRITE, false, write);
            for (int i = 0; i < 2; i++) {
                try (ReceivedMessage r = s.channel().receive(Duration.ofSeconds(5))) {
                    answers.add(new int[]{r.header().messageId(), r.header().isError() ? r.header().error() : 0});
                }
            }
            s.reply(m.header(), readReply(m, 4));
            done.countDown();
        });
        assertEquals(0, client.regionRead(0, 0, 4));
        assertTrue(done.await(5, TimeUnit.SECONDS));
        assertEquals(2, answers.size());
        for (int[] a : answers) {
            assertEquals(Errno.EFAULT, a[1], "DMA to unmapped memory of message " + a[0]);
        }
        assertFalse(client.isBroken(), "a bad DMA request from the server is refused, not fatal");
        assertEquals(2, client.dma().requestsServed());
    }

    @Test
    void setIrqsIsSplitByTheServersMaxMsgFds() throws Exception {
        server = new FakeServer(dir.resolve("fake.sock"), FakeServer.caps(2, 1 << 20), (m, s) -> s.reply(m.header(), Unpooled.EMPTY_BUFFER));
        client = VfioUserClientTest.connectWhenListening(server.path, options());
        EventFd[] e = {new EventFd(true), new EventFd(true), new EventFd(true), new EventFd(true), new EventFd(true)};
        try {
            client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 10, e[0].fd(), e[1].fd(), e[2].fd(), -1, -1, e[3].fd(), e[4].fd()));
            client.setIrqs(VfioIrqSet.eventfds(VfioIrqSet.Action.TRIGGER, vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0));
        } finally {
            for (EventFd f : e) {
                f.close();
            }
        }
        List<String> sent = new java.util.ArrayList<>();
        for (int i = 0; i < server.payloads.size(); i++) {
            DeviceSetIrqsCodec.IrqSet s = DeviceSetIrqsCodec.decode(Unpooled.wrappedBuffer(server.payloads.get(i)));
            assertEquals(VfioUserCommand.DEVICE_SET_IRQS, server.requests.get(i).command());
            sent.add(s.start() + "+" + s.count() + " fds " + server.requestFds.get(i));
        }
        assertEquals(List.of("10+2 fds 2", "12+1 fds 1", "13+2 fds 0", "15+2 fds 2", "0+0 fds 0"), sent);
        assertFalse(client.isBroken());
    }

    @Test
    void regionAccessIsSplitByTheServersMaxDataXferSize() throws Exception {
        server = new FakeServer(dir.resolve("fake.sock"), FakeServer.caps(1, 8), (m, s) -> {
            if (m.header().command() == VfioUserCommand.REGION_READ) {
                RegionReadCodec.Request r = RegionReadCodec.decodeRequest(m.payloadBuffer(), 8);
                byte[] data = new byte[(int) r.count()];
                for (int i = 0; i < data.length; i++) {
                    data[i] = (byte) (r.offset() + i);
                }
                ByteBuf out = Unpooled.buffer();
                RegionReadCodec.encode(new RegionReadCodec.Reply(r.offset(), r.region(), data), out);
                s.reply(m.header(), out);
            }
        });
        client = VfioUserClientTest.connectWhenListening(server.path, options());
        assertEquals(8, client.maxDataXferSize());
        byte[] got = new byte[20];
        client.regionRead(4, 0x30, java.lang.foreign.MemorySegment.ofArray(got));
        for (int i = 0; i < got.length; i++) {
            assertEquals((byte) (0x30 + i), got[i]);
        }
        List<Long> counts = server.payloads.stream()
                .map(p -> RegionReadCodec.decodeRequest(Unpooled.wrappedBuffer(p), 8).count()).toList();
        assertEquals(List.of(8L, 8L, 4L), counts);
    }

    @Test
    void headerOnlyErrorReplyIsAnErrorNotABreak() throws Exception {
        start((m, s) -> s.channel().sendError(m.header().messageId(), m.header().command(), Errno.EINVAL));
        VfioUserClientException e = assertThrows(VfioUserClientException.class, () -> client.regionRead(0, 0, 4));
        assertEquals(Errno.EINVAL, e.errno());
        assertFalse(client.isBroken());
        assertTrue(log.list.stream().noneMatch(ev -> ev.getLevel() == Level.ERROR));
        assertEquals(VfioUserHeader.SIZE, VfioUserHeader.errorReply(0, VfioUserCommand.REGION_READ, 1).messageSize());
    }
}
