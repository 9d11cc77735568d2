package dev.panamax.tests.vfiouser;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.SocketLibc;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.vfiouser.transport.VfioUserTransportException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * A vfio-user server that misbehaves on cue, for "the VM survives a bad server" tests. For each socket path it
 * listens, accepts one client and runs a real {@link VfioUserServer} with a minimal device ({@link #minimalDevice})
 * on one end of a {@link UnixSocket#pair()}; two threads forward whole messages (and their SCM_RIGHTS fds) between
 * the client's socket and the other end. Until the trigger it is a faithful proxy. The trigger is the client's
 * {@code VFIO_USER_REGION_READ} of the configuration region (index 7) at an offset of at least {@link #TRIGGER_OFFSET}
 * (a guest pulls it with {@code dd if=/sys/bus/pci/devices/BDF/config bs=4 skip=60 count=1}); from then on the
 * connection misbehaves as its {@link Mode} says. Each socket serves one connection; the sockets are independent
 * (one dying leaves the others serving).
 *
 * <p>Prints, on standard output, {@code misbehaving-server: PATH MODE listening} once a socket listens and
 * {@code misbehaving-server: PATH MODE triggered ...} when its trigger fires.
 *
 * <p>Command line: {@code --socket PATH --mode MODE} pairs, or {@code PATH=MODE} words, mixed as you like.
 */
public final class MisbehavingServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MisbehavingServer.class);
    /** Configuration space offsets from here on pull the trigger (bytes). */
    public static final long TRIGGER_OFFSET = 0xF0;
    /** {@code VFIO_PCI_CONFIG_REGION_INDEX}. */
    public static final int CONFIG_REGION = vfio_h.VFIO_PCI_CONFIG_REGION_INDEX();
    /** The device: Red Hat's QEMU PCI test device ID, which no Linux driver binds; class 0xff0000 (unassigned). */
    public static final int VENDOR_ID = 0x1b36;
    public static final int DEVICE_ID = 0x0005;
    public static final int CLASS_CODE = 0xff0000;
    /** Bytes the {@code garbage} mode writes, and the seed of their generator. */
    public static final int GARBAGE_BYTES = 300;
    public static final long GARBAGE_SEED = 0x5eedF0L;
    /** Fds the {@code too-many-fds} mode attaches to the reply. */
    public static final int TOO_MANY_FDS = 3;
    /** Largest message forwarded: header + 16 bytes of region access + 16 MiB of data + slack. */
    private static final long MAX_MESSAGE = VfioUserHeader.SIZE + 16 + (16L << 20) + 4096;
    private static final Duration ACCEPT_POLL = Duration.ofMillis(100);

    /** What a connection does once triggered. */
    public enum Mode {
        /** Closes both ends of the connection (the process serves its other sockets on). */
        DIES("dies"),
        /** Never answers the trigger request nor anything after it; the socket stays open. */
        STALL("stall"),
        /** Answers the trigger request with a reply carrying another message ID. */
        WRONG_ID("wrong-id"),
        /** Answers with a REGION_READ reply whose count (and data) differs from the request's. */
        WRONG_SIZE("wrong-size"),
        /** Answers correctly but attaches {@value MisbehavingServer#TOO_MANY_FDS} fresh eventfds to the reply. */
        TOO_MANY_FDS("too-many-fds"),
        /** Writes {@value MisbehavingServer#GARBAGE_BYTES} seeded random bytes on the client's socket instead of the reply. */
        GARBAGE("garbage");

        private final String arg;

        Mode(String arg) {
            this.arg = arg;
        }

        /** @return the command-line name, e.g. {@code wrong-id} */
        public String arg() {
            return arg;
        }

        /** @throws IllegalArgumentException for a name that is no mode */
        public static Mode of(String arg) {
            for (Mode m : values()) {
                if (m.arg.equals(arg)) {
                    return m;
                }
            }
            List<String> names = new ArrayList<>();
            for (Mode m : values()) {
                names.add(m.arg);
            }
            throw new IllegalArgumentException("misbehaving-server: mode '" + arg + "' is not one of " + names);
        }

        @Override
        public String toString() {
            return arg;
        }
    }

    private final Map<Path, Mode> sockets;
    private final List<Thread> threads = new ArrayList<>();
    private final List<Connection> connections = new CopyOnWriteArrayList<>();
    private final Map<Path, CountDownLatch> triggered = new LinkedHashMap<>();
    private final CountDownLatch listening;
    private volatile boolean closing;

    private MisbehavingServer(Map<Path, Mode> sockets) {
        this.sockets = Map.copyOf(sockets);
        this.listening = new CountDownLatch(sockets.size());
        for (Path p : sockets.keySet()) {
            triggered.put(p, new CountDownLatch(1));
        }
    }

    /**
     * Listens on every path (the files must not exist; their directories must) and serves each in its own thread.
     * Returns once all listen.
     *
     * @throws LinuxException when a path cannot be bound (e.g. EADDRINUSE); the ones already bound are closed
     */
    public static MisbehavingServer start(Map<Path, Mode> sockets) {
        if (sockets.isEmpty()) {
            throw new IllegalArgumentException("misbehaving-server: no socket given");
        }
        MisbehavingServer s = new MisbehavingServer(sockets);
        s.warmUp();
        List<UnixSocket> listeners = new ArrayList<>();
        try {
            for (Map.Entry<Path, Mode> e : sockets.entrySet()) {
                listeners.add(UnixSocket.listen(e.getKey(), 1));
            }
        } catch (RuntimeException e) {
            for (UnixSocket l : listeners) {
                l.close();
            }
            s.removeSocketFiles();
            throw e;
        }
        int i = 0;
        for (Map.Entry<Path, Mode> e : sockets.entrySet()) {
            UnixSocket listener = listeners.get(i++);
            Path path = e.getKey();
            Mode mode = e.getValue();
            Thread t = Thread.ofPlatform().name("misbehaving-server " + path.getFileName()).daemon()
                    .unstarted(() -> s.serve(listener, path, mode));
            s.threads.add(t);
            t.start();
        }
        try {
            s.listening.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return s;
    }

    /**
     * Serves a few requests of an in-process client through a proxy connection (without the trigger), so that the
     * first real client is not answered late by a cold JVM: a fresh process took over 500 ms to answer VERSION.
     */
    private void warmUp() {
        UnixSocket[] ends = UnixSocket.pair();
        Connection c = new Connection(ends[0], Path.of("warm-up"), Mode.DIES);
        Thread t = Thread.ofPlatform().name("misbehaving-server warm-up").daemon().start(c::run);
        try (VfioUserClient client = VfioUserClient.over(ends[1], "warm-up", VfioUserClient.Options.defaults())) {
            for (int i = 0; i < 64; i++) {
                client.regionRead(CONFIG_REGION, (4L * i) % TRIGGER_OFFSET, 4);
            }
        } finally {
            c.end();
        }
        try {
            t.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The minimal device: vendor/device {@value #VENDOR_ID}/{@value #DEVICE_ID}, class ff0000, no BAR, capability or IRQ. */
    public static VfioUserDevice minimalDevice() {
        return VfioUserDevice.builder(VfioUserDevice.pciFunction("misbehaving-server", VENDOR_ID, DEVICE_ID, CLASS_CODE, 0)).build();
    }

    /** @return true once the trigger of {@code path} has fired (before the misbehaviour) */
    public boolean awaitTriggered(Path path, Duration timeout) throws InterruptedException {
        CountDownLatch l = triggered.get(path);
        if (l == null) {
            throw new IllegalArgumentException("misbehaving-server: not serving " + path);
        }
        return l.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /**
     * Waits until every socket has served its connection and closed it (or been closed).
     *
     * @param timeout null to wait forever
     * @return false on timeout
     */
    public boolean awaitFinished(Duration timeout) throws InterruptedException {
        long deadline = timeout == null ? Long.MAX_VALUE : System.nanoTime() + timeout.toNanos();
        for (Thread t : threads) {
            if (timeout == null) {
                t.join();
            } else {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !t.join(Duration.ofNanos(left))) {
                    return false;
                }
            }
        }
        return true;
    }

    /** Stops listening, ends every connection (both ends and the inner server), removes the socket files. */
    @Override
    public void close() {
        closing = true;
        for (Connection c : connections) {
            c.end();
        }
        try {
            awaitFinished(null);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        removeSocketFiles();
    }

    private void removeSocketFiles() {
        for (Path p : sockets.keySet()) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException e) {
                LOG.warn("misbehaving-server: could not remove {}: {}", p, e.toString());
            }
        }
    }

    private static void say(String line) {
        System.out.println("misbehaving-server: " + line);
        System.out.flush();
    }

    /** One socket's thread: accept one client, proxy it, end. */
    private void serve(UnixSocket listener, Path path, Mode mode) {
        UnixSocket client = null;
        try (listener) {
            say(path + " " + mode + " listening");
            listening.countDown();
            while (client == null && !closing) {
                try {
                    client = listener.accept(ACCEPT_POLL);
                } catch (ReceiveTimeoutException e) {
                    // poll again, unless closing
                }
            }
        } catch (RuntimeException e) {
            LOG.error("misbehaving-server: {} failed to accept: {}", path, e.toString());
        } finally {
            try {
                Files.deleteIfExists(path);
            } catch (IOException e) {
                LOG.warn("misbehaving-server: could not remove {}: {}", path, e.toString());
            }
        }
        if (client == null) {
            return;
        }
        Connection c = new Connection(client, path, mode);
        connections.add(c);
        if (closing) {
            c.end();
        }
        c.run();
        connections.remove(c);
        LOG.info("misbehaving-server: {} {} connection ended", path, mode);
    }

    /** One client connection: the inner server, the two forwarders, the misbehaviour. */
    private final class Connection {
        private final Path path;
        private final Mode mode;
        private final UnixSocket clientSocket;
        private final UnixSocket proxySocket;
        private final MessageChannel client;
        private final MessageChannel server;
        private final VfioUserServer inner;
        /** Message ID of the trigger request whose reply is to be spoilt, or -1. */
        private volatile int spoil = -1;
        private volatile boolean fired;
        /** After the trigger in {@code stall}: nothing goes anywhere any more. */
        private volatile boolean stalled;

        Connection(UnixSocket clientSocket, Path path, Mode mode) {
            this.path = path;
            this.mode = mode;
            this.clientSocket = clientSocket;
            UnixSocket[] pair = UnixSocket.pair();
            this.proxySocket = pair[0];
            this.client = new MessageChannel(clientSocket, SocketLibc.SCM_MAX_FD, MAX_MESSAGE);
            this.server = new MessageChannel(pair[0], SocketLibc.SCM_MAX_FD, MAX_MESSAGE);
            this.inner = new VfioUserServer(pair[1], minimalDevice());
        }

        void run() {
            inner.start();
            Thread up = Thread.ofPlatform().name("misbehaving-proxy up " + path.getFileName()).daemon().start(this::clientToServer);
            Thread down = Thread.ofPlatform().name("misbehaving-proxy down " + path.getFileName()).daemon().start(this::serverToClient);
            try {
                up.join();
                down.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            client.close();
            server.close();
            inner.close();
        }

        /** Shuts both sockets down: both forwarders wake and end; the client and the inner server see end of stream. */
        void end() {
            clientSocket.shutdown();
            proxySocket.shutdown();
        }

        private void clientToServer() {
            try {
                while (true) {
                    try (ReceivedMessage m = client.receive(null)) {
                        if (stalled) {
                            continue; // swallowed (its fds closed)
                        }
                        VfioUserHeader h = m.header();
                        if (!fired && isTrigger(m)) {
                            fired = true;
                            say(path + " " + mode + " triggered by REGION_READ message " + h.messageId()
                                    + " at 0x" + Long.toHexString(triggerOffset(m)) + " of the config region");
                            triggered.get(path).countDown();
                            switch (mode) {
                                case DIES -> {
                                    end();
                                    return;
                                }
                                case STALL -> {
                                    stalled = true;
                                    continue;
                                }
                                default -> spoil = h.messageId();
                            }
                        }
                        forward(m, proxySocket);
                    }
                }
            } catch (PeerClosedException e) {
                LOG.debug("misbehaving-server: {}: client gone", path);
            } catch (VfioUserTransportException | VfioUserProtocolException | LinuxException e) {
                LOG.info("misbehaving-server: {}: client side: {}", path, e.getMessage());
            } finally {
                end();
            }
        }

        private void serverToClient() {
            try {
                while (true) {
                    try (ReceivedMessage m = server.receive(null)) {
                        if (stalled) {
                            continue;
                        }
                        VfioUserHeader h = m.header();
                        if (h.isReply() && h.messageId() == spoil && h.command() == VfioUserCommand.REGION_READ) {
                            spoil = -1;
                            misbehave(m);
                        } else {
                            forward(m, clientSocket);
                        }
                    }
                }
            } catch (PeerClosedException e) {
                LOG.debug("misbehaving-server: {}: inner server gone", path);
            } catch (VfioUserTransportException | VfioUserProtocolException | LinuxException e) {
                LOG.info("misbehaving-server: {}: server side: {}", path, e.getMessage());
            } finally {
                end();
            }
        }

        /** Sends, instead of the trigger's reply {@code reply}, what the mode says. */
        private void misbehave(ReceivedMessage reply) {
            VfioUserHeader h = reply.header();
            switch (mode) {
                case WRONG_ID -> {
                    VfioUserHeader other = new VfioUserHeader(h.messageId() ^ 0x8000, h.command(), h.messageSize(), h.flags(), h.error());
                    sendAll(clientSocket, bytes(other, reply.payload()), new int[0]);
                }
                case WRONG_SIZE -> {
                    RegionReadCodec.Reply r = RegionReadCodec.decodeReply(reply.payloadBuffer(), Integer.MAX_VALUE);
                    byte[] data = r.data();
                    // One byte fewer, or one more for a one-byte read: the count and the data agree with each other only.
                    byte[] wrong = java.util.Arrays.copyOf(data, data.length >= 2 ? data.length - 1 : data.length + 1);
                    ByteBuf out = Unpooled.buffer();
                    RegionReadCodec.encode(new RegionReadCodec.Reply(r.offset(), r.region(), wrong), out);
                    byte[] payload = new byte[out.readableBytes()];
                    out.readBytes(payload);
                    sendAll(clientSocket, bytes(VfioUserHeader.reply(h.messageId(), h.command(), payload.length), payload), new int[0]);
                }
                case TOO_MANY_FDS -> {
                    List<EventFd> extra = new ArrayList<>();
                    try {
                        int[] fds = new int[TOO_MANY_FDS];
                        for (int i = 0; i < fds.length; i++) {
                            EventFd e = new EventFd(false);
                            extra.add(e);
                            fds[i] = e.fd();
                        }
                        sendAll(clientSocket, bytes(h, reply.payload()), fds);
                    } finally {
                        for (EventFd e : extra) {
                            e.close();
                        }
                    }
                }
                case GARBAGE -> {
                    byte[] junk = new byte[GARBAGE_BYTES];
                    new Random(GARBAGE_SEED).nextBytes(junk);
                    sendAll(clientSocket, junk, new int[0]);
                }
                default -> throw new IllegalStateException("mode " + mode + " spoils no reply");
            }
        }

        /** Sends {@code m} as it came, its fds passed along (taken, then closed once sent). */
        private void forward(ReceivedMessage m, UnixSocket to) {
            int[] fds = new int[m.fds().count()];
            for (int i = 0; i < fds.length; i++) {
                fds[i] = m.fds().take(i);
            }
            try {
                sendAll(to, bytes(m.header(), m.payload()), fds);
            } finally {
                for (int fd : fds) {
                    dev.panamax.core.sys.Libc.close(fd);
                }
            }
        }
    }

    private static boolean isTrigger(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        if (h.isReply() || h.command() != VfioUserCommand.REGION_READ || m.payload().length != RegionReadCodec.SIZE) {
            return false;
        }
        ByteBuf b = m.payloadBuffer();
        long offset = b.readLongLE();
        long region = b.readUnsignedIntLE();
        return region == CONFIG_REGION && Long.compareUnsigned(offset, TRIGGER_OFFSET) >= 0;
    }

    private static long triggerOffset(ReceivedMessage m) {
        return m.payloadBuffer().readLongLE();
    }

    private static byte[] bytes(VfioUserHeader h, byte[] payload) {
        ByteBuf b = Unpooled.buffer(VfioUserHeader.SIZE + payload.length);
        h.encode(b);
        b.writeBytes(payload);
        byte[] out = new byte[b.readableBytes()];
        b.readBytes(out);
        return out;
    }

    /**
     * Writes all of {@code data} with {@code fds} on the first byte, without the checks {@link MessageChannel#send}
     * makes (so that a bad message can go out as it is).
     *
     * @throws PeerClosedException when the peer has gone
     */
    private static void sendAll(UnixSocket to, byte[] data, int[] fds) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(Math.max(1, data.length));
            MemorySegment.copy(data, 0, seg, JAVA_BYTE, 0, data.length);
            long sent = 0;
            int[] pending = fds;
            while (sent < data.length) {
                long r = to.sendRaw(seg.asSlice(sent, data.length - sent), pending);
                if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                    continue;
                }
                if (r == -Errno.EPIPE || r == -Errno.ECONNRESET) {
                    throw new PeerClosedException("peer closed " + to);
                }
                if (r < 0) {
                    throw new LinuxException("sendmsg on " + to, (int) -r);
                }
                sent += r;
                pending = new int[0];
            }
        }
    }

    /**
     * Parses {@code --socket PATH --mode MODE} pairs and {@code PATH=MODE} words.
     *
     * @throws IllegalArgumentException naming the bad argument
     */
    public static Map<Path, Mode> parse(String... args) {
        Map<Path, Mode> out = new LinkedHashMap<>();
        Path socket = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--socket") || a.equals("--mode")) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("misbehaving-server: " + a + " needs a value");
                }
                String v = args[++i];
                if (a.equals("--socket")) {
                    if (socket != null) {
                        throw new IllegalArgumentException("misbehaving-server: --socket " + socket + " has no --mode");
                    }
                    socket = Path.of(v);
                } else {
                    if (socket == null) {
                        throw new IllegalArgumentException("misbehaving-server: --mode " + v + " comes before its --socket");
                    }
                    put(out, socket, Mode.of(v));
                    socket = null;
                }
            } else if (a.indexOf('=') > 0 && !a.startsWith("-")) {
                int eq = a.lastIndexOf('=');
                put(out, Path.of(a.substring(0, eq)), Mode.of(a.substring(eq + 1)));
            } else {
                throw new IllegalArgumentException("misbehaving-server: argument '" + a
                        + "' is neither --socket PATH, --mode MODE nor PATH=MODE");
            }
        }
        if (socket != null) {
            throw new IllegalArgumentException("misbehaving-server: --socket " + socket + " has no --mode");
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("misbehaving-server: usage: --socket PATH --mode MODE ... | PATH=MODE ...");
        }
        return out;
    }

    private static void put(Map<Path, Mode> out, Path p, Mode m) {
        if (out.putIfAbsent(p, m) != null) {
            throw new IllegalArgumentException("misbehaving-server: socket " + p + " is given twice");
        }
    }

    /** Serves the sockets until each has served its connection (or the process is stopped), then exits. */
    public static void main(String... args) throws InterruptedException {
        Map<Path, Mode> sockets;
        try {
            sockets = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        MisbehavingServer s;
        try {
            s = start(sockets);
        } catch (RuntimeException e) {
            System.err.println("misbehaving-server: " + e.getMessage());
            System.exit(1);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(s::close, "misbehaving-server shutdown"));
        s.awaitFinished(null);
        s.close();
    }
}
