package dev.panamax.virtio.blk;

import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.MemFd;
import dev.panamax.core.sys.OpenFds;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.vfiouser.transport.VfioUserTransportException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Map;
import java.util.TreeMap;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Throws malformed messages at a {@link VirtioBlkServer} listening on a real socket path: random
 * bytes, unknown commands, truncated and random payloads, size fields too small or huge, wrong
 * flags, fds where none belong, mutated valid messages. Each case runs on a fresh connection;
 * where the server keeps the connection, several bad messages go on it and a good request
 * follows. Every bad request must get an error reply or a clean close, the good request its
 * answer, the next client must be accepted, and no fd may leak.
 */
class VfioUserFuzzTest {
    static final int CASES = 360;
    static final int PROBE_ID = 0xBEEF;
    static final VfioUserCommand[] WITH_PAYLOAD = {VfioUserCommand.DMA_MAP, VfioUserCommand.DMA_UNMAP, VfioUserCommand.DEVICE_GET_INFO,
            VfioUserCommand.DEVICE_GET_REGION_INFO, VfioUserCommand.DEVICE_GET_REGION_IO_FDS, VfioUserCommand.DEVICE_GET_IRQ_INFO,
            VfioUserCommand.DEVICE_SET_IRQS, VfioUserCommand.REGION_READ, VfioUserCommand.REGION_WRITE, VfioUserCommand.REGION_WRITE_MULTI};
    /** Commands whose request carries no fd. */
    static final VfioUserCommand[] NO_FDS = {VfioUserCommand.VERSION, VfioUserCommand.DMA_UNMAP, VfioUserCommand.DEVICE_GET_INFO,
            VfioUserCommand.DEVICE_GET_REGION_INFO, VfioUserCommand.DEVICE_GET_IRQ_INFO, VfioUserCommand.REGION_READ,
            VfioUserCommand.REGION_WRITE, VfioUserCommand.DEVICE_RESET};

    @TempDir
    Path dir;
    final Random random = new Random(20261126);
    int nextId = 1;

    /** The process's open fds and what each is, without the listing's own directory fd. */
    static Map<String, String> openFds() {
        return OpenFds.byNumber();
    }

    /** @return the fds of {@code now} that were not open (as the same thing) in {@code before} */
    static Map<String, String> added(Map<String, String> before, Map<String, String> now) {
        Map<String, String> added = new TreeMap<>(now);
        added.entrySet().removeIf(e -> e.getValue().equals(before.get(e.getKey())));
        return added;
    }

    /** A raw message: header fields as given, then the payload. */
    static byte[] message(int id, int command, long size, int flags, byte[] payload) {
        ByteBuf b = Unpooled.buffer();
        b.writeShortLE(id).writeShortLE(command).writeIntLE((int) size).writeIntLE(flags).writeIntLE(0).writeBytes(payload);
        byte[] out = new byte[b.readableBytes()];
        b.readBytes(out);
        return out;
    }

    static byte[] command(int id, VfioUserCommand command, byte[] payload) {
        return message(id, command.code(), VfioUserHeader.SIZE + payload.length, vfio_user_h.VFIO_USER_F_TYPE_COMMAND(), payload);
    }

    /** Sends bytes and fds with one sendmsg, past the channel's checks; false when the server has already gone. */
    static boolean send(TestClient c, byte[] bytes, int... fds) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(Math.max(1, bytes.length));
            MemorySegment.copy(bytes, 0, m, JAVA_BYTE, 0, bytes.length);
            return c.channel.socket().sendRaw(m.asSlice(0, bytes.length), fds) == bytes.length;
        } catch (VfioUserTransportException e) {
            return false;
        }
    }

    byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        random.nextBytes(b);
        return b;
    }

    /** A valid REGION_READ of the vendor ID. */
    static byte[] probe() {
        ByteBuf p = payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(0, vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 2), b));
        byte[] bytes = new byte[p.readableBytes()];
        p.readBytes(bytes);
        return command(PROBE_ID, VfioUserCommand.REGION_READ, bytes);
    }

    /**
     * Sends the probe and reads until its answer or a close.
     *
     * @param errorIds IDs of bad requests that must get an error reply before the probe's answer
     * @return true when the probe was answered, false when the server closed the connection (then no error is required)
     */
    static boolean probeAndCollect(TestClient c, List<Integer> errorIds, String what) {
        boolean sent = send(c, probe());
        List<Integer> errors = new ArrayList<>();
        while (true) {
            ReceivedMessage m;
            try {
                m = c.channel.receive(TestClient.T);
            } catch (PeerClosedException e) {
                return false;
            } catch (VfioUserProtocolException e) {
                // An error reply echoing an unknown command number: the channel names its ID.
                assertTrue(e.messageId() >= 0, what + ": undecodable message from the server: " + e.getMessage());
                errors.add(e.messageId());
                continue;
            } catch (ReceiveTimeoutException e) {
                throw new AssertionError(what + ": the server neither answered nor closed within " + TestClient.T);
            } catch (VfioUserTransportException e) {
                return false; // ECONNRESET and the like: closed
            }
            try (m) {
                assertTrue(m.header().isReply(), what + ": the server sent a request " + m.header().command());
                if (m.header().messageId() == PROBE_ID && m.header().command() == VfioUserCommand.REGION_READ) {
                    assertTrue(sent, what);
                    assertFalse(m.header().isError(), what + ": the good request failed with errno " + m.header().error());
                    assertTrue(errors.containsAll(errorIds), what + ": error replies for " + errorIds + ", got " + errors);
                    return true;
                }
                if (m.header().isError()) {
                    errors.add(m.header().messageId());
                }
            }
        }
    }

    @Test
    void malformedMessagesGetErrorsOrACloseAndTheServerGoesOn() throws Exception {
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[64 * 1024]);
        Path path = dir.resolve("blk.sock");
        try (VirtioBlkServer server = new VirtioBlkServer(path, disk, VirtioBlk.Options.DEFAULT);
             MemFd memfd = new MemFd("fuzz", 4096); EventFd eventfd = new EventFd(true)) {
            Thread loop = Thread.ofPlatform().name("virtio-blk-accept").start(server::run);
            // Warm up: one case of each kind and a good client load the classes (and open the jars), FFM stubs, logging.
            for (int k = 0; k < 9; k++) {
                oneCase(path, k, memfd.fd(), eventfd.fd());
            }
            oneCase(path, -1);
            Map<String, String> before = openFds();
            int answered = 0;
            int closed = 0;
            for (int i = 0; i < CASES; i++) {
                if (oneCase(path, i, memfd.fd(), eventfd.fd())) {
                    answered++;
                } else {
                    closed++;
                }
            }
            // The server accepted every client and still serves a well-behaved one.
            assertTrue(oneCase(path, -1), "a good client after the fuzzing");
            assertTrue(answered > CASES / 3 && closed > CASES / 10, answered + " cases answered, " + closed + " closed");
            // No fds left behind: the server closes each connection and each received fd (allow it to settle).
            Map<String, String> leaked = null;
            for (int t = 0; t < 50; t++) {
                leaked = added(before, openFds());
                if (leaked.isEmpty()) {
                    break;
                }
                Thread.sleep(100);
            }
            assertEquals(Map.of(), leaked, "fds leaked");
            server.close();
            loop.join(5000);
            assertFalse(loop.isAlive());
            assertFalse(Files.exists(path), "socket file removed on close");
            assertTrue(server.clientsServed() >= CASES + 11, server.clientsServed() + " clients served");
        }
    }

    /**
     * One connection with one kind of bad input (case {@code i}; -1 for none).
     *
     * @return true when the good request that follows was answered, false when the server closed
     */
    boolean oneCase(Path path, int i, int... fds) {
        try (TestClient c = new TestClient(UnixSocket.connect(path), 0, 0)) {
            if (i < 0) {
                assertEquals(0, c.version().major());
                return probeAndCollect(c, List.of(), "good client");
            }
            int kind = i % 9;
            boolean version = kind != 1 || random.nextBoolean();
            if (version) {
                c.version();
            }
            String what = "case " + i + " kind " + kind;
            List<Integer> errorIds = new ArrayList<>();
            switch (kind) {
                case 0 -> {
                    // Random bytes, then the connection closes: the server may be mid-message.
                    send(c, randomBytes(1 + random.nextInt(64)));
                    return false;
                }
                case 1 -> {
                    // Commands before VERSION (when it was skipped), or unknown command numbers: ENOSYS/EINVAL.
                    for (int k = 0; k < 3; k++) {
                        int id = nextId++ & 0x7FFF;
                        if (!version) {
                            send(c, command(id, VfioUserCommand.DEVICE_GET_INFO, new byte[16]));
                        } else {
                            int code = 16 + random.nextInt(0xFFF0);
                            send(c, message(id, code, 16 + 8, 0, randomBytes(8)));
                        }
                        errorIds.add(id);
                    }
                    if (!version) {
                        ByteBuf v = payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0, null), b));
                        byte[] vb = new byte[v.readableBytes()];
                        v.readBytes(vb);
                        send(c, command(nextId++ & 0x7FFF, VfioUserCommand.VERSION, vb));
                    }
                }
                case 2 -> {
                    // Truncated payloads (0..3 bytes; every one of these commands needs more): EINVAL.
                    for (int k = 0; k < 3; k++) {
                        int id = nextId++ & 0x7FFF;
                        send(c, command(id, WITH_PAYLOAD[random.nextInt(WITH_PAYLOAD.length)], randomBytes(random.nextInt(4))));
                        errorIds.add(id);
                    }
                }
                case 3 -> {
                    // Random payloads: some reply, any errno; the server must answer each.
                    for (int k = 0; k < 3; k++) {
                        send(c, command(nextId++ & 0x7FFF, WITH_PAYLOAD[random.nextInt(WITH_PAYLOAD.length)], randomBytes(4 + random.nextInt(200))));
                    }
                }
                case 4 -> {
                    // A size field beyond any message the server takes: an error reply and a close.
                    long size = VfioUserServer.MAX_DATA_XFER_SIZE + 8192 + (random.nextLong() & 0x7FFFFFFFL) % (0xFFFFFFFFL - VfioUserServer.MAX_DATA_XFER_SIZE - 8192);
                    send(c, message(nextId++ & 0x7FFF, VfioUserCommand.REGION_WRITE.code(), size, 0, randomBytes(32)));
                    assertFalse(probeAndCollect(c, List.of(), what), what + ": the server must close after size " + size);
                    return false;
                }
                case 5 -> {
                    // A size field below the header's 16 bytes: close.
                    send(c, message(nextId++ & 0x7FFF, VfioUserCommand.DEVICE_GET_INFO.code(), random.nextInt(16), 0, randomBytes(16)));
                    assertFalse(probeAndCollect(c, List.of(), what), what + ": the server must close");
                    return false;
                }
                case 6 -> {
                    // Wrong flags on a good REGION_READ: undefined bits (EINVAL), a reply nobody waits for (dropped),
                    // error on a command, no_reply (served, not answered).
                    byte[] good = probe();
                    int id = nextId++ & 0x7FFF;
                    int flags = switch (random.nextInt(4)) {
                        case 0 -> 0x40 << random.nextInt(24);
                        case 1 -> vfio_user_h.VFIO_USER_F_TYPE_REPLY();
                        case 2 -> vfio_user_h.VFIO_USER_F_ERROR();
                        default -> vfio_user_h.VFIO_USER_F_NO_REPLY() | (random.nextBoolean() ? 0 : 2 + random.nextInt(14));
                    };
                    byte[] bad = message(id, VfioUserCommand.REGION_READ.code(), good.length, flags, java.util.Arrays.copyOfRange(good, 16, good.length));
                    send(c, bad);
                    if ((flags & ~0x3F) != 0 || (flags & 0xF) > 1) {
                        errorIds.add(id);
                    }
                }
                case 7 -> {
                    // fds where none belong (or too many): EINVAL, and the server closes them.
                    for (int k = 0; k < 2; k++) {
                        int id = nextId++ & 0x7FFF;
                        VfioUserCommand cmd = NO_FDS[random.nextInt(NO_FDS.length)];
                        byte[] p = cmd == VfioUserCommand.DEVICE_RESET ? new byte[0] : randomBytes(16 + 8 * random.nextInt(3));
                        int[] sent = random.nextBoolean() ? new int[]{fds[0]} : new int[]{fds[0], fds[1], fds[0]};
                        send(c, command(id, cmd, p), sent);
                        errorIds.add(id);
                    }
                    // DMA_MAP with two fds.
                    int id = nextId++ & 0x7FFF;
                    ByteBuf m = Unpooled.buffer().writeIntLE(32).writeIntLE(3).writeLongLE(0).writeLongLE(0x100000).writeLongLE(4096);
                    byte[] p = new byte[32];
                    m.readBytes(p);
                    send(c, command(id, VfioUserCommand.DMA_MAP, p), fds[0], fds[0]);
                    errorIds.add(id);
                }
                default -> {
                    // A good message with 1..3 bytes flipped, then the connection closes.
                    byte[] good = random.nextBoolean() ? probe()
                            : command(nextId++ & 0x7FFF, VfioUserCommand.DEVICE_GET_REGION_INFO, new byte[]{32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
                    for (int k = 1 + random.nextInt(3); k > 0; k--) {
                        good[random.nextInt(good.length)] ^= (byte) (1 + random.nextInt(255));
                    }
                    send(c, good);
                    return false;
                }
            }
            // These errors leave the connection usable: the good request must be answered.
            assertTrue(probeAndCollect(c, errorIds, what), what + ": the server closed the connection");
            return true;
        }
    }
}
