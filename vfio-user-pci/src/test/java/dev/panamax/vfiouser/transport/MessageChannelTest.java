package dev.panamax.vfiouser.transport;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import dev.panamax.core.sys.OpenFds;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The transport over real sockets: a socketpair and a listening socket in a temp dir. */
class MessageChannelTest {
    private static final Duration T = Duration.ofSeconds(5);
    private static final long MAX = 1 << 20;

    @BeforeAll
    static void warmUp() {
        // Load the classes and FFM stubs once, so that counting /proc/self/fd later sees only our fds.
        try (Pair p = new Pair(3)) {
            p.client.sendCommand(1, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER);
            p.server.receive(T).close();
        }
    }

    /** Two channels over a socketpair: the client side and the server side. */
    private record Pair(MessageChannel client, MessageChannel server) implements AutoCloseable {
        Pair(int maxFds) {
            this(UnixSocket.pair(), maxFds);
        }

        private Pair(UnixSocket[] s, int maxFds) {
            this(new MessageChannel(s[0], maxFds, MAX), new MessageChannel(s[1], maxFds, MAX));
            client.setPeerMaxFds(maxFds);
            server.setPeerMaxFds(maxFds);
        }

        @Override
        public void close() {
            client.close();
            server.close();
        }
    }

    private static Set<String> openFds() {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static void assertNoLeak(Set<String> before) {
        Set<String> after = openFds();
        after.removeAll(before);
        // The listing itself briefly opens a directory fd; it is closed by the time we look again.
        Set<String> again = openFds();
        after.retainAll(again);
        assertTrue(after.isEmpty(), "fds leaked: " + after);
    }

    private static boolean isOpen(int fd) {
        return Files.exists(Path.of("/proc/self/fd/" + fd), LinkOption.NOFOLLOW_LINKS);
    }

    private static ByteBuf payload(java.util.function.Consumer<ByteBuf> encoder) {
        ByteBuf b = Unpooled.buffer();
        encoder.accept(b);
        return b;
    }

    /** Sends raw bytes with fds, bypassing the channel's own checks (a misbehaving peer). */
    private static void sendRaw(UnixSocket s, ByteBuf message, int... fds) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(Math.max(1, message.readableBytes()));
            byte[] b = new byte[message.readableBytes()];
            message.getBytes(message.readerIndex(), b);
            MemorySegment.copy(b, 0, m, JAVA_BYTE, 0, b.length);
            long r = s.sendRaw(m.asSlice(0, b.length), fds);
            assertEquals(b.length, r, "sendmsg");
        }
    }

    private static ByteBuf message(VfioUserHeader h, ByteBuf payload) {
        ByteBuf b = Unpooled.buffer();
        h.encode(b);
        b.writeBytes(payload);
        return b;
    }

    /** A message with no fds, then with one memfd (DMA_MAP), then three eventfds (SET_IRQS). */
    private static void exchange(MessageChannel client, MessageChannel server) {
        // 0 fds: DEVICE_GET_INFO request and its reply.
        client.sendCommand(1, VfioUserCommand.DEVICE_GET_INFO, false,
                payload(o -> DeviceGetInfoCodec.encode(DeviceGetInfoCodec.DeviceInfo.request(), o)));
        try (ReceivedMessage m = server.receive(T)) {
            assertEquals(VfioUserCommand.DEVICE_GET_INFO, m.header().command());
            assertEquals(1, m.header().messageId());
            assertFalse(m.header().isReply());
            assertEquals(0, m.fds().count());
            assertEquals(DeviceGetInfoCodec.DeviceInfo.request(), DeviceGetInfoCodec.decodeRequest(m.payloadBuffer()));
            server.sendReply(m.header(), payload(o -> DeviceGetInfoCodec.encode(
                    new DeviceGetInfoCodec.DeviceInfo(16, dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_PCI(), 9, 5), o)));
        }
        try (ReceivedMessage r = client.receive(T)) {
            assertTrue(r.header().isReply());
            assertEquals(1, r.header().messageId());
            assertEquals(9, DeviceGetInfoCodec.decodeReply(r.payloadBuffer()).numRegions());
        }

        // 1 fd: DMA_MAP with a memfd; both sides write into the shared pages and see the other's bytes.
        try (MemFd ram = new MemFd("vfio-user-test-ram", 2 * 4096)) {
            client.sendCommand(2, VfioUserCommand.DMA_MAP, false, payload(o -> DmaMapCodec.encode(
                    new DmaMapCodec.Request(dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, 0x1000_0000L, ram.size()), o)), ram.fd());
            try (ReceivedMessage m = server.receive(T)) {
                DmaMapCodec.Request req = DmaMapCodec.decode(m.payloadBuffer());
                assertEquals(1, m.fds().count());
                MemorySegment there = Libc.mmap(req.size(), Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED,
                        m.fds().peek(0), req.offset(), "DMA region");
                try {
                    ram.mapping().set(JAVA_LONG, 4096, 0x1122334455667788L);
                    assertEquals(0x1122334455667788L, there.get(JAVA_LONG, 4096));
                    there.set(JAVA_LONG, 8, 0xCAFEBABEL);
                    assertEquals(0xCAFEBABEL, ram.mapping().get(JAVA_LONG, 8));
                } finally {
                    Libc.munmap(there);
                }
                server.sendReply(m.header(), Unpooled.EMPTY_BUFFER);
            }
            client.receive(T).close();
        }

        // 3 fds: SET_IRQS with three eventfds; the server signals each, the client sees it.
        EventFd[] irqs = {new EventFd(true), new EventFd(true), new EventFd(true)};
        try {
            var set = new DeviceSetIrqsCodec.IrqSet(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()
                    | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), 4, 0, 3, new byte[0]);
            client.sendCommand(3, VfioUserCommand.DEVICE_SET_IRQS, true, payload(o -> DeviceSetIrqsCodec.encode(set, o)),
                    irqs[0].fd(), irqs[1].fd(), irqs[2].fd());
            try (ReceivedMessage m = server.receive(T)) {
                assertTrue(m.header().noReply());
                DeviceSetIrqsCodec.IrqSet got = DeviceSetIrqsCodec.decode(m.payloadBuffer());
                DeviceSetIrqsCodec.checkFds(got, m.fds().count());
                assertEquals(3, m.fds().count());
                for (int i = 0; i < 3; i++) {
                    int fd = m.fds().take(i);
                    try (Arena arena = Arena.ofConfined()) {
                        MemorySegment one = arena.allocate(JAVA_LONG);
                        one.set(JAVA_LONG, 0, i + 1L);
                        assertEquals(8, Libc.writeRaw(fd, one));
                    } finally {
                        Libc.close(fd);
                    }
                }
            }
            for (int i = 0; i < 3; i++) {
                assertEquals(i + 1L, irqs[i].read(), "eventfd " + i);
            }
        } finally {
            for (EventFd e : irqs) {
                e.close();
            }
        }
    }

    @Test
    void messagesWithZeroOneAndThreeFdsCrossASocketpair() {
        Set<String> before = openFds();
        try (Pair p = new Pair(8)) {
            exchange(p.client, p.server);
        }
        assertNoLeak(before);
    }

    @Test
    void messagesCrossABoundSocketPath(@TempDir Path dir) {
        Set<String> before = openFds();
        Path path = dir.resolve("vfio-user.sock");
        try (UnixSocket listener = UnixSocket.listen(path, 1)) {
            assertTrue(Files.exists(path));
            UnixSocket c = UnixSocket.connect(path);
            UnixSocket s = listener.accept(T);
            try (MessageChannel client = new MessageChannel(c, 8, MAX); MessageChannel server = new MessageChannel(s, 8, MAX)) {
                client.setPeerMaxFds(8);
                server.setPeerMaxFds(8);
                exchange(client, server);
            }
        }
        assertNoLeak(before);
    }

    @Test
    void connectWithoutListenerAndAcceptTimeout(@TempDir Path dir) {
        var e = assertThrows(dev.panamax.core.sys.LinuxException.class, () -> UnixSocket.connect(dir.resolve("nobody")));
        assertEquals(Errno.ENOENT, e.errno());
        try (UnixSocket listener = UnixSocket.listen(dir.resolve("l.sock"), 1)) {
            assertThrows(ReceiveTimeoutException.class, () -> listener.accept(Duration.ofMillis(50)));
        }
        assertThrows(IllegalArgumentException.class, () -> UnixSocket.listen(dir.resolve("x".repeat(120)), 1));
    }

    @Test
    void tooManyFdsAreRejectedAndClosed() {
        Set<String> before = openFds();
        try (Pair p = new Pair(2)) {
            EventFd[] e = {new EventFd(true), new EventFd(true), new EventFd(true)};
            var set = new DeviceSetIrqsCodec.IrqSet(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()
                    | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), 4, 0, 3, new byte[0]);
            ByteBuf body = payload(o -> DeviceSetIrqsCodec.encode(set, o));
            // The channel refuses to send more than the peer's max_msg_fds ...
            assertThrows(IllegalArgumentException.class, () -> p.client.sendCommand(5, VfioUserCommand.DEVICE_SET_IRQS,
                    false, body, e[0].fd(), e[1].fd(), e[2].fd()));
            // ... a misbehaving peer sends them anyway.
            sendRaw(p.client.socket(), message(VfioUserHeader.command(5, VfioUserCommand.DEVICE_SET_IRQS, body.readableBytes(), false), body),
                    e[0].fd(), e[1].fd(), e[2].fd());
            Set<String> withDuplicates = openFds();
            VfioUserProtocolException x = assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T));
            assertEquals(Errno.EINVAL, x.errno());
            assertEquals(5, x.messageId());
            assertEquals(VfioUserCommand.DEVICE_SET_IRQS.code(), x.command());
            assertTrue(x.getMessage().contains("max_msg_fds"), x.getMessage());
            // The three received duplicates are gone again.
            Set<String> now = openFds();
            assertTrue(withDuplicates.containsAll(now));
            for (EventFd f : e) {
                f.close();
            }
            // The stream is still in step: the next message arrives whole.
            p.client.sendCommand(6, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER);
            try (ReceivedMessage m = p.server.receive(T)) {
                assertEquals(6, m.header().messageId());
            }
        }
        assertNoLeak(before);
    }

    @Test
    void fdsWhereTheCommandHasNoneAreRejectedAndClosed() {
        Set<String> before = openFds();
        try (Pair p = new Pair(8); EventFd e = new EventFd(true)) {
            assertThrows(IllegalArgumentException.class, () -> p.client.sendCommand(7, VfioUserCommand.DEVICE_RESET,
                    false, Unpooled.EMPTY_BUFFER, e.fd()));
            sendRaw(p.client.socket(), message(VfioUserHeader.command(7, VfioUserCommand.DEVICE_RESET, 0, false), Unpooled.EMPTY_BUFFER), e.fd());
            VfioUserProtocolException x = assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T));
            assertEquals(Errno.EINVAL, x.errno());
            assertEquals(7, x.messageId());
            // DMA_MAP carries at most one fd.
            ByteBuf map = payload(o -> DmaMapCodec.encode(new DmaMapCodec.Request(0, 0, 0, 4096), o));
            sendRaw(p.client.socket(), message(VfioUserHeader.command(8, VfioUserCommand.DMA_MAP, 32, false), map), e.fd(), e.fd());
            assertEquals(8, assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T)).messageId());
            // An error reply carries none.
            sendRaw(p.server.socket(), message(VfioUserHeader.errorReply(9, VfioUserCommand.DEVICE_GET_REGION_INFO, Errno.EIO),
                    Unpooled.EMPTY_BUFFER), e.fd());
            assertEquals(9, assertThrows(VfioUserProtocolException.class, () -> p.client.receive(T)).messageId());
        }
        assertNoLeak(before);
    }

    /**
     * Issue 15, defect 6: an fd that rides on payload bytes (a later sendmsg than the header's) is closed at once and
     * the message is a protocol error, read to its end: the stream stays in step.
     */
    @Test
    void anFdOnPayloadBytesIsAProtocolError() {
        Set<String> before = openFds();
        try (Pair p = new Pair(8); EventFd e = new EventFd(true)) {
            ByteBuf map = payload(o -> DmaMapCodec.encode(new DmaMapCodec.Request(3, 0, 0, 4096), o));
            ByteBuf whole = message(VfioUserHeader.command(8, VfioUserCommand.DMA_MAP, map.readableBytes(), false), map);
            sendRaw(p.client.socket(), whole.slice(0, VfioUserHeader.SIZE));
            sendRaw(p.client.socket(), whole.slice(VfioUserHeader.SIZE, whole.readableBytes() - VfioUserHeader.SIZE), e.fd());
            VfioUserProtocolException x = assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T).close(),
                    "DMA_MAP with its fd on the payload's bytes was accepted");
            assertEquals(8, x.messageId());
            assertTrue(x.getMessage().contains("payload"), x.getMessage());
            p.client.sendCommand(9, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER);
            try (ReceivedMessage m = p.server.receive(T)) {
                assertEquals(9, m.header().messageId());
            }
        }
        assertNoLeak(before);
    }

    /**
     * Issue 15, defect 6: a peer that sprays an fd on each of 100 payload bytes, then stalls mid-message: the
     * receiver holds none of them while it waits (each is closed as it comes), and the message times out.
     */
    @Test
    void fdsSprayedOnPayloadBytesDoNotPileUp() throws Exception {
        Set<String> before = openFds();
        try (Pair p = new Pair(8); EventFd e = new EventFd(true)) {
            int base = OpenFds.byNumber().size();
            ByteBuf map = payload(o -> DmaMapCodec.encode(new DmaMapCodec.Request(3, 0, 0, 4096), o));
            byte[] big = new byte[200];
            ByteBuf body = Unpooled.wrappedBuffer(big);
            java.util.concurrent.atomic.AtomicReference<Throwable> ended = new java.util.concurrent.atomic.AtomicReference<>();
            Thread receiver = Thread.ofPlatform().start(() -> {
                try {
                    p.server.receive(Duration.ofSeconds(2)).close();
                } catch (Throwable t) {
                    ended.set(t);
                }
            });
            sendRaw(p.client.socket(), message(VfioUserHeader.command(10, VfioUserCommand.REGION_WRITE, big.length, false), Unpooled.EMPTY_BUFFER));
            for (int i = 0; i < 100; i++) {
                sendRaw(p.client.socket(), body.slice(i, 1), e.fd());
            }
            Thread.sleep(500);
            int held = OpenFds.byNumber().size() - base;
            assertTrue(held <= 2, "the receiver holds " + held + " fds sprayed on payload bytes");
            receiver.join(5000);
            assertTrue(ended.get() instanceof ReceiveTimeoutException, String.valueOf(ended.get()));
        }
        assertNoLeak(before);
    }

    /** Issue 15, defect 12: a listening socket's file is 0600 whatever the umask; a same-uid peer's credentials. */
    @Test
    void aListeningSocketIsMode0600AndKnowsItsPeer(@TempDir Path dir) throws Exception {
        Set<String> before = openFds();
        Path path = dir.resolve("s.sock");
        try (UnixSocket listener = UnixSocket.listen(path, 1)) {
            assertEquals(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"), Files.getPosixFilePermissions(path));
            try (UnixSocket client = UnixSocket.connect(path); UnixSocket served = listener.accept(T)) {
                PeerCredentials peer = served.peerCredentials();
                assertEquals(ProcessHandle.current().pid(), peer.pid());
                assertEquals(SocketLibc.geteuid(), peer.uid());
                assertTrue(peer.allowedBy(PeerCredentials.NO_UID), "our own uid is served");
            }
        }
        assertNoLeak(before);
    }

    /** Issue 15, defect 12: the peer-uid decision, uids as input (another uid for real: VirtioBlkServerTest). */
    @Test
    void onlyOurUidOrTheAllowedOneIsServed() {
        assertTrue(PeerCredentials.allowed(1000, 1000, PeerCredentials.NO_UID));
        assertFalse(PeerCredentials.allowed(1001, 1000, PeerCredentials.NO_UID));
        assertFalse(PeerCredentials.allowed(0, 1000, PeerCredentials.NO_UID), "root is not let in by accident");
        assertTrue(PeerCredentials.allowed(1001, 1000, 1001));
        assertFalse(PeerCredentials.allowed(1002, 1000, 1001));
        assertTrue(PeerCredentials.allowed(0, 0, 65534));
        assertTrue(PeerCredentials.allowed(65534, 0, 65534));
        assertFalse(PeerCredentials.allowed(-1, 1000, PeerCredentials.NO_UID), "NO_UID is no uid");
    }

    @Test
    void receivedFdsAreClosedExactlyOnce() {
        EventFd e = new EventFd(true);
        int dup = Libc.dup(e.fd());
        int dup2 = Libc.dup(e.fd());
        ReceivedFds fds = new ReceivedFds(new int[] {dup, dup2});
        int taken = fds.take(1);
        assertThrows(IllegalStateException.class, () -> fds.take(1));
        fds.close();
        assertFalse(isOpen(dup));
        assertTrue(isOpen(taken));
        fds.close(); // a second close closes nothing (the number may be reused by now)
        assertThrows(IllegalStateException.class, () -> fds.take(0));
        Libc.close(taken);
        e.close();
    }

    @Test
    void unknownCommandAndBadFlagsAreRejectedWithTheStreamInStep() {
        try (Pair p = new Pair(1)) {
            ByteBuf bad = Unpooled.buffer();
            bad.writeShortLE(11).writeShortLE(14).writeIntLE(20).writeIntLE(0).writeIntLE(0).writeIntLE(0xDEAD);
            sendRaw(p.client.socket(), bad);
            VfioUserProtocolException x = assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T));
            assertEquals(Errno.ENOSYS, x.errno());
            assertEquals(11, x.messageId());
            assertEquals(14, x.command());
            ByteBuf flags = Unpooled.buffer();
            flags.writeShortLE(12).writeShortLE(1).writeIntLE(16).writeIntLE(0x7).writeIntLE(0);
            sendRaw(p.client.socket(), flags);
            assertEquals(Errno.EINVAL, assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T)).errno());
            p.client.sendCommand(13, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER);
            try (ReceivedMessage m = p.server.receive(T)) {
                assertEquals(13, m.header().messageId());
            }
            // The server answers the bad one with an error reply.
            p.server.sendError(x.messageId(), VfioUserCommand.DEVICE_RESET, x.errno());
            try (ReceivedMessage r = p.client.receive(T)) {
                assertTrue(r.header().isError());
                assertEquals(Errno.ENOSYS, r.header().error());
            }
        }
    }

    @Test
    void oversizedMessageBreaksTheChannel() {
        try (Pair p = new Pair(1)) {
            ByteBuf big = Unpooled.buffer();
            VfioUserHeader.command(1, VfioUserCommand.REGION_WRITE, 100, false).encode(big);
            big.setIntLE(4, (int) MAX + 1);
            sendRaw(p.client.socket(), big);
            VfioUserProtocolException x = assertThrows(VfioUserProtocolException.class, () -> p.server.receive(T));
            assertEquals(Errno.E2BIG, x.errno());
            assertThrows(VfioUserTransportException.class, () -> p.server.receive(T));
        }
    }

    @Test
    void peerClosedGivesEofNotAHang() {
        Set<String> before = openFds();
        Pair p = new Pair(1);
        p.client.close();
        long t0 = System.nanoTime();
        PeerClosedException e = assertThrows(PeerClosedException.class, () -> p.server.receive(null));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertThrows(PeerClosedException.class, () -> p.server.sendCommand(1, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER));
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L);
        p.server.close();

        // Closed in the middle of a message.
        Pair q = new Pair(1);
        ByteBuf half = Unpooled.buffer();
        VfioUserHeader.command(1, VfioUserCommand.REGION_WRITE, 100, false).encode(half);
        half.writeZero(10);
        sendRaw(q.client.socket(), half);
        q.client.close();
        PeerClosedException mid = assertThrows(PeerClosedException.class, () -> q.server.receive(T));
        assertTrue(mid.getMessage().contains("mid-message"), mid.getMessage());
        q.server.close();
        assertNoLeak(before);
    }

    @Test
    void receiveTimesOut() {
        try (Pair p = new Pair(1)) {
            long t0 = System.nanoTime();
            assertThrows(ReceiveTimeoutException.class, () -> p.server.receive(Duration.ofMillis(100)));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertTrue(ms >= 90 && ms < 3000, "waited " + ms + " ms");
            // Nothing was consumed: the channel still works.
            p.client.sendCommand(2, VfioUserCommand.DEVICE_RESET, false, Unpooled.EMPTY_BUFFER);
            p.server.receive(T).close();
            // Half a message, then silence: timeout, and the channel is out of step.
            sendRaw(p.client.socket(), Unpooled.wrappedBuffer(new byte[] {1, 0, 13, 0}));
            assertThrows(ReceiveTimeoutException.class, () -> p.server.receive(Duration.ofMillis(100)));
            assertThrows(VfioUserTransportException.class, () -> p.server.receive(T));
        }
    }

    @Test
    void largePayloadArrivesWhole() {
        try (Pair p = new Pair(1)) {
            byte[] data = new byte[600_000];
            for (int i = 0; i < data.length; i++) {
                data[i] = (byte) (i * 31);
            }
            Thread sender = Thread.ofVirtual().start(() -> p.client.sendCommand(4, VfioUserCommand.REGION_WRITE, false,
                    payload(o -> dev.panamax.vfiouser.protocol.RegionWriteCodec.encode(
                            new dev.panamax.vfiouser.protocol.RegionWriteCodec.Request(0, 0, data), o))));
            try (ReceivedMessage m = p.server.receive(T)) {
                assertArrayEquals(data, dev.panamax.vfiouser.protocol.RegionWriteCodec.decodeRequest(m.payloadBuffer(), MAX).data());
            }
            sender.join(5000);
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        }
    }
}
