package dev.panamax.tests.vfiouser;

import dev.panamax.core.sys.OpenFds;
import dev.panamax.tests.vfiouser.MisbehavingServer.Mode;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.client.VfioUserClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link MisbehavingServer} on the host, no KVM: a {@link VfioUserClient} reads the device's configuration space
 * through the proxy, then pulls the trigger (a read at 0xF0). For every mode the call returns promptly, the client is
 * broken, later reads are all-ones, and once client and server are closed this process holds no more sockets,
 * eventfds or memfds than before.
 */
@Timeout(30)
class MisbehavingServerProxyTest {
    static final Duration REQUEST_TIMEOUT = Duration.ofMillis(500);
    /** The trigger read may take the request timeout (stall) plus this. */
    static final Duration SLACK = Duration.ofMillis(1500);
    static final int CONFIG = vfio_h.VFIO_PCI_CONFIG_REGION_INDEX();

    @TempDir
    Path dir;

    /** Times the clients of a test told their broken-device listener. */
    final AtomicInteger brokenCalls = new AtomicInteger();

    VfioUserClient.Options options() {
        return VfioUserClient.Options.defaults().withRequestTimeout(REQUEST_TIMEOUT)
                .withOnBroken((client, reason) -> brokenCalls.incrementAndGet());
    }

    /**
     * Waits up to a second for {@code n} listener calls: the client runs its listener on the thread that saw the
     * break, after {@code isBroken()} is true and the waiting call has returned.
     */
    void awaitBrokenCalls(int n) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(1).toNanos();
        while (brokenCalls.get() < n && System.nanoTime() - deadline < 0) {
            Thread.sleep(5);
        }
    }

    /** What the client says broke it, per mode: each mode must break it its own way (not, say, all by timeout). */
    static String expectedReason(Mode mode) {
        return switch (mode) {
            case DIES -> "the server closed the connection";
            case STALL -> "no reply to REGION_READ of 4 bytes at 0xf0 of region 7 within 500 ms";
            case WRONG_ID -> "answers no request we sent";
            case WRONG_SIZE -> "the reply has 3 bytes at 0xf0";
            case TOO_MANY_FDS -> "3 fds, the command carries at most 0"; // within max_msg_fds (16), over REGION_READ's 0
            case GARBAGE -> "bad message from the server";
        };
    }

    /** The sockets, eventfds and memfds of this process (/proc/self/fd), the kinds client and server make. */
    static List<String> fds() {
        return OpenFds.ipcTargets();
    }

    /** Reads below 0xF0 are served as by the device itself, and do not trigger. */
    static void assertServesDevice(VfioUserClient client, MisbehavingServer server, Path socket) throws InterruptedException {
        assertEquals(MisbehavingServer.VENDOR_ID, client.regionRead(CONFIG, 0x00, 2), "vendor ID");
        assertEquals(MisbehavingServer.DEVICE_ID, client.regionRead(CONFIG, 0x02, 2), "device ID");
        assertEquals(MisbehavingServer.CLASS_CODE, client.regionRead(CONFIG, 0x08, 4) >>> 8, "class code");
        assertEquals(0, client.regionRead(CONFIG, 0x3D, 1), "interrupt pin");
        assertEquals(0, client.regionRead(CONFIG, 0xEC, 4), "the dword below the trigger");
        assertFalse(client.isBroken(), client.brokenReason());
        assertFalse(server.awaitTriggered(socket, Duration.ZERO), "triggered by a read below 0xF0");
    }

    /** Pulls the trigger: the read returns all-ones promptly and leaves the client broken. */
    void assertTriggerBreaks(VfioUserClient client, MisbehavingServer server, Path socket, Mode mode)
            throws InterruptedException {
        long t0 = System.nanoTime();
        long v = client.regionRead(CONFIG, MisbehavingServer.TRIGGER_OFFSET, 4);
        Duration took = Duration.ofNanos(System.nanoTime() - t0);
        assertTrue(server.awaitTriggered(socket, Duration.ZERO), "the read at 0xF0 did not trigger " + mode);
        assertTrue(took.compareTo(REQUEST_TIMEOUT.plus(SLACK)) < 0, mode + ": the trigger read took " + took.toMillis() + " ms");
        assertTrue(client.isBroken(), mode + ": the client is not broken");
        assertTrue(client.brokenReason().contains(expectedReason(mode)), mode + ": broken because " + client.brokenReason());
        assertEquals(0xFFFF_FFFFL, v, mode + ": the trigger read");
        assertEquals(0xFFFF, client.regionRead(CONFIG, 0x00, 2), mode + ": vendor ID after breaking");
        assertEquals(0xFFFF_FFFFL, client.regionRead(CONFIG, MisbehavingServer.TRIGGER_OFFSET, 4), mode + ": 0xF0 again");
    }

    @ParameterizedTest
    @EnumSource(Mode.class)
    void theClientBreaksPromptlyAndLeaksNothing(Mode mode) throws Exception {
        List<String> before = fds();
        Path socket = dir.resolve(mode.arg() + ".sock");
        try (MisbehavingServer server = MisbehavingServer.start(Map.of(socket, mode))) {
            VfioUserClient client = VfioUserClient.connect(socket, options());
            try {
                assertFalse(Files.exists(socket), "the socket file stays after the connection was accepted");
                assertServesDevice(client, server, socket);
                assertTriggerBreaks(client, server, socket, mode);
                System.out.println(mode + ": client broken: " + client.brokenReason());
                awaitBrokenCalls(1);
                assertEquals(1, brokenCalls.get(), mode + ": broken-device listener calls");
            } finally {
                client.close();
            }
            assertTrue(server.awaitFinished(Duration.ofSeconds(5)), mode + ": the connection did not end after the client closed");
        }
        List<String> after = fds();
        assertTrue(after.size() <= before.size(), mode + ": fds before " + before + ", after " + after);
    }

    @Test
    void aSocketThatDiesLeavesTheOthersServing() throws Exception {
        List<String> before = fds();
        Map<Path, Mode> sockets = new LinkedHashMap<>();
        Path dies = dir.resolve("dies.sock");
        Path other = dir.resolve("other.sock");
        Path third = dir.resolve("third.sock");
        sockets.put(dies, Mode.DIES);
        sockets.put(other, Mode.DIES);
        sockets.put(third, Mode.WRONG_ID);
        try (MisbehavingServer server = MisbehavingServer.start(sockets)) {
            try (VfioUserClient a = VfioUserClient.connect(dies, options())) {
                assertServesDevice(a, server, dies);
                assertTriggerBreaks(a, server, dies, Mode.DIES);
            }
            assertTrue(Files.exists(other) && Files.exists(third), "the other sockets still listen");
            try (VfioUserClient b = VfioUserClient.connect(other, options());
                 VfioUserClient c = VfioUserClient.connect(third, options())) {
                assertServesDevice(b, server, other);
                assertServesDevice(c, server, third);
                assertTriggerBreaks(b, server, other, Mode.DIES);
                assertServesDevice(c, server, third);
                assertTriggerBreaks(c, server, third, Mode.WRONG_ID);
            }
            awaitBrokenCalls(3);
            assertEquals(3, brokenCalls.get(), "broken-device listener calls");
            assertTrue(server.awaitFinished(Duration.ofSeconds(5)), "every socket served its connection");
        }
        assertTrue(fds().size() <= before.size(), "fds before " + before + ", after " + fds());
    }

    /**
     * The command line, as an end-to-end test runs it: {@code java -cp <this class path> MisbehavingServer
     * --socket A --mode dies B=garbage}. The process prints its listening lines, serves B after A died, and exits
     * with status 0 once both connections are over, removing its socket files.
     */
    @Test
    @Timeout(120)
    void runsAsItsOwnProcess() throws Exception {
        Path a = dir.resolve("a.sock");
        Path b = dir.resolve("b.sock");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), MisbehavingServer.class.getName(),
                "--socket", a.toString(), "--mode", "dies", b + "=garbage")
                .redirectErrorStream(true).start();
        List<String> lines = new CopyOnWriteArrayList<>();
        Thread pump = Thread.ofPlatform().daemon().start(() -> {
            try (var r = p.inputReader()) {
                for (String line; (line = r.readLine()) != null; ) {
                    lines.add(line);
                }
            } catch (IOException e) {
                // the process ended
            }
        });
        try {
            String listeningA = "misbehaving-server: " + a + " dies listening";
            String listeningB = "misbehaving-server: " + b + " garbage listening";
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            while (!(lines.contains(listeningA) && lines.contains(listeningB)) && p.isAlive() && System.nanoTime() - deadline < 0) {
                Thread.sleep(20);
            }
            assertTrue(lines.contains(listeningA) && lines.contains(listeningB), "no listening lines: " + lines);
            VfioUserClient.Options slow = options().withRequestTimeout(Duration.ofSeconds(2));
            try (VfioUserClient ca = VfioUserClient.connect(a, slow)) {
                assertEquals(MisbehavingServer.VENDOR_ID, ca.regionRead(CONFIG, 0, 2));
                ca.regionRead(CONFIG, MisbehavingServer.TRIGGER_OFFSET, 4);
                assertTrue(ca.isBroken());
                assertTrue(ca.brokenReason().contains(expectedReason(Mode.DIES)), ca.brokenReason());
            }
            try (VfioUserClient cb = VfioUserClient.connect(b, slow)) {
                assertEquals(MisbehavingServer.VENDOR_ID, cb.regionRead(CONFIG, 0, 2), "b after a died");
                cb.regionRead(CONFIG, MisbehavingServer.TRIGGER_OFFSET, 4);
                assertTrue(cb.isBroken());
                assertTrue(cb.brokenReason().contains(expectedReason(Mode.GARBAGE)), cb.brokenReason());
            }
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "still running after both connections: " + lines);
            pump.join(5000);
            assertEquals(0, p.exitValue(), String.join("\n", lines));
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("misbehaving-server: " + a + " dies triggered")), lines.toString());
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("misbehaving-server: " + b + " garbage triggered")), lines.toString());
            assertFalse(Files.exists(a) || Files.exists(b), "socket files left");
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void closingStopsSocketsNobodyConnectedToAndRemovesTheirFiles() {
        Path idle = dir.resolve("idle.sock");
        MisbehavingServer server = MisbehavingServer.start(Map.of(idle, Mode.STALL));
        assertTrue(Files.exists(idle));
        server.close();
        assertFalse(Files.exists(idle), "socket file left after close");
    }

    @Test
    void parsesBothArgumentForms() {
        Map<Path, Mode> m = MisbehavingServer.parse("--socket", "/tmp/a.sock", "--mode", "stall", "/tmp/b.sock=wrong-size",
                "--socket", "/tmp/c.sock", "--mode", "too-many-fds");
        assertEquals(List.of(Path.of("/tmp/a.sock"), Path.of("/tmp/b.sock"), Path.of("/tmp/c.sock")), List.copyOf(m.keySet()));
        assertEquals(List.of(Mode.STALL, Mode.WRONG_SIZE, Mode.TOO_MANY_FDS), List.copyOf(m.values()));
        for (Mode mode : Mode.values()) {
            assertEquals(mode, Mode.of(mode.arg()));
        }
        var e = assertThrows(IllegalArgumentException.class, () -> MisbehavingServer.parse("/tmp/a.sock=explodes"));
        assertTrue(e.getMessage().contains("'explodes'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> MisbehavingServer.parse("--socket", "/tmp/a.sock"));
        assertThrows(IllegalArgumentException.class, () -> MisbehavingServer.parse("--mode", "dies"));
        assertThrows(IllegalArgumentException.class, () -> MisbehavingServer.parse("/tmp/a.sock=dies", "/tmp/a.sock=stall"));
        assertThrows(IllegalArgumentException.class, MisbehavingServer::parse);
    }
}
