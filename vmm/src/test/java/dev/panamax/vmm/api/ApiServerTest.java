package dev.panamax.vmm.api;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The control socket over real UNIX sockets, against a VM stand-in: the server and its protocol are under test. */
class ApiServerTest {
    @TempDir
    Path dir;

    private final List<AutoCloseable> toClose = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : toClose.reversed()) {
            c.close();
        }
    }

    /** A VM stand-in: records calls, throws {@link #failWith} when set, and counts calls in progress at once. */
    static final class FakeVm implements VmControl {
        volatile String state = Status.RUNNING;
        volatile Throwable failWith;
        volatile Path lastSnapshot, lastMigrate;
        volatile CountDownLatch gate; // snapshot waits on it when set
        final AtomicInteger inside = new AtomicInteger(), mostInside = new AtomicInteger();

        private void enter() {
            mostInside.accumulateAndGet(inside.incrementAndGet(), Math::max);
            if (failWith != null) {
                inside.decrementAndGet();
                switch (failWith) {
                    case RuntimeException e -> throw e;
                    case Error e -> throw e;
                    default -> throw new IllegalStateException(failWith);
                }
            }
        }

        @Override
        public Status status() {
            enter();
            inside.decrementAndGet();
            return new Status(state, 2, 512L << 20, 1234);
        }

        @Override
        public void pause() {
            enter();
            state = Status.PAUSED;
            inside.decrementAndGet();
        }

        @Override
        public void resume() {
            enter();
            state = Status.RUNNING;
            inside.decrementAndGet();
        }

        @Override
        public SnapshotResult snapshot(Path d) {
            enter();
            try {
                if (gate != null) {
                    gate.await(10, TimeUnit.SECONDS);
                }
                lastSnapshot = d;
                return new SnapshotResult(d, 4096, 8192, 7);
            } catch (InterruptedException e) {
                throw new IllegalStateException(e);
            } finally {
                inside.decrementAndGet();
            }
        }

        @Override
        public MigrationResult migrate(Path socket) {
            enter();
            lastMigrate = socket;
            inside.decrementAndGet();
            return new MigrationResult(socket, 45, 4, 8192, 900);
        }
    }

    private final FakeVm vm = new FakeVm();

    private Path sock() {
        return dir.resolve("api.sock");
    }

    private ApiServer start() {
        return start(ApiServer.DEFAULT_IDLE_LIMIT);
    }

    private ApiServer start(Duration idle) {
        ApiServer s = ApiServer.start(sock(), vm, idle);
        toClose.add(s);
        return s;
    }

    private LineChannel raw() throws IOException {
        LineChannel c = new LineChannel(SocketChannel.open(UnixDomainSocketAddress.of(sock())), 1 << 20);
        toClose.add(c);
        return c;
    }

    private static long in(Duration d) {
        return System.nanoTime() + d.toNanos();
    }

    private static JsonNode exchange(LineChannel c, String request) throws IOException {
        c.writeLine(request.getBytes(StandardCharsets.UTF_8), in(Duration.ofSeconds(5)));
        return reply(c);
    }

    private static JsonNode reply(LineChannel c) throws IOException {
        byte[] line = c.readLine(in(Duration.ofSeconds(5)));
        assertTrue(line != null, "a reply, not the end of the connection");
        JsonNode node = ApiProtocol.JSON.readTree(line);
        assertTrue(node.path("ok").isBoolean(), node.toString());
        return node;
    }

    @Test
    void statusPauseResume() {
        start();
        ApiClient.Reply status = ApiClient.send(sock(), ApiClient.Request.status());
        assertEquals("{\"ok\":true,\"state\":\"running\",\"cpus\":2,\"memory_bytes\":536870912,\"uptime_ms\":1234}", status.toString());
        assertTrue(status.ok());
        assertNull(status.error());
        assertEquals("{\"ok\":true}", ApiClient.send(sock(), ApiClient.Request.pause()).toString());
        assertEquals("paused", ApiClient.send(sock(), ApiClient.Request.status()).json().get("state").asText());
        assertEquals("{\"ok\":true}", ApiClient.send(sock(), ApiClient.Request.resume()).toString());
        assertEquals("running", ApiClient.send(sock(), ApiClient.Request.status()).json().get("state").asText());
    }

    @Test
    void snapshotAndMigrateTakeAbsolutePaths() {
        start();
        ApiClient.Reply r = ApiClient.send(sock(), ApiClient.Request.snapshot(dir.resolve("snap")));
        assertEquals("{\"ok\":true,\"dir\":\"" + dir.resolve("snap") + "\",\"ram_bytes\":4096,\"disk_bytes\":8192,\"paused_ms\":7}",
                r.toString());
        assertEquals(dir.resolve("snap"), vm.lastSnapshot);
        // The client makes a relative path absolute against its own working directory.
        ApiClient.send(sock(), ApiClient.Request.snapshot(Path.of("rel/snap")));
        assertEquals(Path.of("rel/snap").toAbsolutePath(), vm.lastSnapshot);
        assertEquals("{\"ok\":true,\"socket\":\"" + dir.resolve("dst.sock") + "\",\"downtime_ms\":45,\"rounds\":4,"
                + "\"bytes_sent\":8192,\"total_ms\":900}",
                ApiClient.send(sock(), ApiClient.Request.migrate(dir.resolve("dst.sock"))).toString());
        assertEquals(dir.resolve("dst.sock"), vm.lastMigrate);
    }

    @Test
    void badRequestsGetAnErrorReplyAndTheConnectionStaysOpen() throws IOException {
        start();
        LineChannel c = raw();
        String[][] cases = {
                {"{\"command\":", "bad JSON"},
                {"not json", "bad JSON"},
                {"{\"command\":\"status\"} {\"command\":\"status\"}", "bad JSON"},
                {"{\"command\":\"status\",\"command\":\"pause\"}", "bad JSON: Duplicate field 'command'"},
                {"", "empty request"},
                {"[1,2]", "a request is a JSON object, not array"},
                {"{}", "a request needs \"command\", a string: one of status, pause, resume, snapshot, migrate"},
                {"{\"command\":7}", "a request needs \"command\""},
                {"{\"command\":\"reboot\"}", "unknown command 'reboot' (status, pause, resume, snapshot, migrate)"},
                {"{\"command\":\"snapshot\"}", "snapshot needs \"dir\", a string: an absolute path"},
                {"{\"command\":\"snapshot\",\"dir\":42}", "snapshot needs \"dir\", a string: an absolute path"},
                {"{\"command\":\"snapshot\",\"dir\":\"\"}", "snapshot needs \"dir\""},
                {"{\"command\":\"snapshot\",\"dir\":\"snap\"}", "snapshot: \"dir\" must be an absolute path, not 'snap'"},
                {"{\"command\":\"snapshot\",\"dir\":\"/a\\u0000b\"}", "snapshot: \"dir\" is not a path"},
                {"{\"command\":\"snapshot\",\"directory\":\"/s\"}", "snapshot: unknown field 'directory'"},
                {"{\"command\":\"migrate\",\"socket\":null}", "migrate needs \"socket\""},
                {"{\"command\":\"status\",\"verbose\":true}", "status: unknown field 'verbose'"},
        };
        for (String[] t : cases) {
            JsonNode r = exchange(c, t[0]);
            assertFalse(r.get("ok").asBoolean(), t[0]);
            assertTrue(r.get("error").asText().startsWith(t[1]), t[0] + " -> " + r);
            assertFalse(r.get("error").asText().contains("\n"), r.toString());
        }
        assertEquals(0, vm.mostInside.get(), "no bad request reached the VM");
        assertTrue(exchange(c, "{\"command\":\"status\"}").get("ok").asBoolean(), "still served");
        // Several requests in one write: one reply each, in order; "\r\n" endings are fine.
        c.writeLine("{\"command\":\"pause\"}\r\n{\"command\":\"status\"}".getBytes(StandardCharsets.UTF_8), in(Duration.ofSeconds(5)));
        assertEquals("{\"ok\":true}", reply(c).toString());
        assertEquals("paused", reply(c).get("state").asText());
    }

    @Test
    void aLineOverTheLimitIsRefusedAndItsConnectionClosed() throws IOException {
        start();
        LineChannel c = raw();
        // Exactly at the limit is fine.
        String status = "{\"command\":\"status\"}";
        assertTrue(exchange(c, status + " ".repeat(ApiServer.MAX_LINE_BYTES - status.length())).get("ok").asBoolean());
        JsonNode r = exchange(c, "x".repeat(ApiServer.MAX_LINE_BYTES + 1));
        assertEquals("request line longer than 65536 bytes; closing the connection", r.get("error").asText());
        assertClosed(c);
        // A peer that never sends a newline at all gets the same.
        LineChannel d = raw();
        SocketChannel ch = d.channel();
        ByteBuffer junk = ByteBuffer.wrap(new byte[ApiServer.MAX_LINE_BYTES + 100]);
        while (junk.hasRemaining()) {
            ch.write(junk);
        }
        assertTrue(reply(d).get("error").asText().startsWith("request line longer than 65536 bytes"));
        assertClosed(d);
    }

    @Test
    void whatTheVmThrowsBecomesAnErrorReply() {
        start();
        vm.failWith = new VmControl.ControlException("device 0000:00:03.0 (vfio-pci) does not support migration");
        ApiClient.Reply r = ApiClient.send(sock(), ApiClient.Request.snapshot(dir.resolve("s")));
        assertFalse(r.ok());
        assertEquals("snapshot: device 0000:00:03.0 (vfio-pci) does not support migration", r.error());
        vm.failWith = new IllegalStateException("two\nlines");
        assertEquals("pause: two lines", ApiClient.send(sock(), ApiClient.Request.pause()).error());
        vm.failWith = new NullPointerException();
        assertEquals("status: NullPointerException", ApiClient.send(sock(), ApiClient.Request.status()).error());
        // An Error (here as a fault in guest memory surfaces) is answered too, not a connection closed without a reply.
        vm.failWith = new InternalError("a fault occurred in an unsafe memory access");
        assertEquals("migrate: InternalError: a fault occurred in an unsafe memory access",
                ApiClient.send(sock(), ApiClient.Request.migrate(dir.resolve("m.sock"))).error());
        vm.failWith = new OutOfMemoryError();
        assertEquals("pause: OutOfMemoryError", ApiClient.send(sock(), ApiClient.Request.pause()).error());
        vm.failWith = null;
        assertTrue(ApiClient.send(sock(), ApiClient.Request.status()).ok(), "the server lives on");
    }

    @Test
    void connectionsAreBoundedAndRequestsSerialized() throws Exception {
        start();
        List<LineChannel> held = new ArrayList<>();
        for (int i = 0; i < ApiServer.MAX_CONNECTIONS; i++) {
            held.add(raw());
            assertTrue(exchange(held.get(i), "{\"command\":\"status\"}").get("ok").asBoolean());
        }
        LineChannel extra = raw();
        assertEquals("too many connections (at most 4 at once)", reply(extra).get("error").asText());
        assertNull(extra.readLine(in(Duration.ofSeconds(5))));
        held.getFirst().close();
        assertTrue(eventually(() -> ApiClient.send(sock(), ApiClient.Request.status()).ok()), "a freed slot is reused");
        held.getLast().close();

        // Two connections ask at once: the VM sees one request at a time.
        vm.gate = new CountDownLatch(1);
        vm.mostInside.set(0);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<ApiClient.Reply> snap = pool.submit(() -> ApiClient.send(sock(), ApiClient.Request.snapshot(dir.resolve("a"))));
            assertTrue(eventually(() -> vm.inside.get() == 1));
            Future<ApiClient.Reply> status = pool.submit(() -> ApiClient.send(sock(), ApiClient.Request.status()));
            Thread.sleep(200);
            assertFalse(status.isDone(), "status waits for the snapshot");
            vm.gate.countDown();
            assertTrue(snap.get(10, TimeUnit.SECONDS).ok());
            assertTrue(status.get(10, TimeUnit.SECONDS).ok());
            assertEquals(1, vm.mostInside.get());
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void anIdleConnectionIsClosedAndItsSlotFreed() throws Exception {
        start(Duration.ofMillis(200));
        List<LineChannel> idle = new ArrayList<>();
        for (int i = 0; i < ApiServer.MAX_CONNECTIONS; i++) {
            idle.add(raw());
        }
        for (LineChannel c : idle) {
            assertNull(c.readLine(in(Duration.ofSeconds(5))), "closed by the server");
        }
        assertTrue(eventually(() -> ApiClient.send(sock(), ApiClient.Request.status()).ok()));
        // A slow peer sending a byte at a time still has to finish its line within the limit.
        LineChannel slow = raw();
        assertThrows(IOException.class, () -> {
            for (int i = 0; i < 20; i++) {
                slow.channel().write(ByteBuffer.wrap(new byte[]{' '}));
                Thread.sleep(50);
            }
        });
    }

    @Test
    void closeRemovesTheSocketAndEndsConnections() throws IOException {
        ApiServer s = start();
        assertEquals(sock(), s.socketPath());
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(sock())));
        LineChannel c = raw();
        assertTrue(exchange(c, "{\"command\":\"status\"}").get("ok").asBoolean());
        s.close();
        s.close();
        assertFalse(Files.exists(sock()));
        assertNull(c.readLine(in(Duration.ofSeconds(5))));
        ApiClient.NoReplyException e = assertThrows(ApiClient.NoReplyException.class,
                () -> ApiClient.send(sock(), ApiClient.Request.status()));
        assertEquals("cannot connect to the api socket " + sock() + ": no such socket (is a panamax running with --api-socket "
                + sock() + "?)", e.getMessage());
    }

    @Test
    void aStaleSocketIsReplacedALiveOneRefused() throws IOException {
        try (ServerSocketChannel old = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            old.bind(UnixDomainSocketAddress.of(sock()));
        }
        assertTrue(Files.exists(sock()), "a socket file nobody listens on");
        ApiClient.NoReplyException refused = assertThrows(ApiClient.NoReplyException.class,
                () -> ApiClient.send(sock(), ApiClient.Request.status()));
        assertTrue(refused.getMessage().endsWith(": connection refused (nothing listens there: the panamax that made it has exited?)"),
                refused.getMessage());
        start();
        assertTrue(ApiClient.send(sock(), ApiClient.Request.status()).ok());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ApiServer.start(sock(), new FakeVm()));
        assertEquals("api socket " + sock() + ": another process listens there (a running panamax?)", e.getMessage());
        assertTrue(ApiClient.send(sock(), ApiClient.Request.status()).ok(), "the first server still serves");
    }

    @Test
    void whatIsNotASocketIsLeftAlone() throws IOException {
        Path file = Files.writeString(dir.resolve("notes.txt"), "mine");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ApiServer.start(file, vm));
        assertEquals("api socket " + file + " exists and is not a socket: remove it or choose another path", e.getMessage());
        assertEquals("mine", Files.readString(file));
        Path nowhere = dir.resolve("no/such/dir/api.sock");
        UncheckedIOException u = assertThrows(UncheckedIOException.class, () -> ApiServer.start(nowhere, vm));
        assertTrue(u.getMessage().startsWith("cannot listen on the api socket " + nowhere + ": "), u.getMessage());
    }

    @Test
    void aServerThatDoesNotAnswerTimesOut() throws IOException {
        try (ServerSocketChannel mute = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            mute.bind(UnixDomainSocketAddress.of(sock()));
            ApiClient.NoReplyException e = assertThrows(ApiClient.NoReplyException.class,
                    () -> ApiClient.send(sock(), ApiClient.Request.status().withTimeout(Duration.ofMillis(300))));
            assertEquals("no reply from the api socket " + sock() + " to status within 300 ms", e.getMessage());
        }
    }

    @Test
    void requestsFromACommandLine() {
        assertEquals("{\"command\":\"status\"}", ApiClient.line(ApiClient.Request.parse("status", List.of())));
        assertEquals(ApiClient.SHORT_TIMEOUT, ApiClient.Request.parse("pause", List.of()).timeout());
        ApiClient.Request snap = ApiClient.Request.parse("snapshot", List.of("/var/snap/../snap2"));
        assertEquals("{\"command\":\"snapshot\",\"dir\":\"/var/snap2\"}", ApiClient.line(snap));
        assertEquals(ApiClient.LONG_TIMEOUT, snap.timeout());
        assertEquals("{\"command\":\"migrate\",\"socket\":\"/run/in.sock\"}",
                ApiClient.line(ApiClient.Request.parse("migrate", List.of("/run/in.sock"))));
        assertEquals("unknown command 'reboot' (status, pause, resume, snapshot DIR or migrate SOCKET)",
                assertThrows(IllegalArgumentException.class, () -> ApiClient.Request.parse("reboot", List.of())).getMessage());
        assertEquals("status takes no argument",
                assertThrows(IllegalArgumentException.class, () -> ApiClient.Request.parse("status", List.of("x"))).getMessage());
        assertEquals("snapshot takes one argument, the snapshot's directory DIR",
                assertThrows(IllegalArgumentException.class, () -> ApiClient.Request.parse("snapshot", List.of())).getMessage());
    }

    /**
     * The server closed {@code c}: end of stream, or ECONNRESET where the server closed with bytes of ours unread
     * (Linux's af_unix reports that only after the data queued for us, the reply, has been read).
     */
    private static void assertClosed(LineChannel c) {
        try {
            assertNull(c.readLine(in(Duration.ofSeconds(5))));
        } catch (IOException e) {
            assertEquals("Connection reset", e.getMessage());
        }
    }

    interface Check {
        boolean holds() throws Exception;
    }

    /** Whether {@code check} holds within 5 s (a server thread frees its slot just after the peer's close). */
    private static boolean eventually(Check check) throws InterruptedException {
        long deadline = in(Duration.ofSeconds(5));
        while (System.nanoTime() < deadline) {
            try {
                if (check.holds()) {
                    return true;
                }
            } catch (Exception e) {
                // not yet
            }
            Thread.sleep(20);
        }
        return false;
    }
}
