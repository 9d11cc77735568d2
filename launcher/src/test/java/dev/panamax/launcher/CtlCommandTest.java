package dev.panamax.launcher;

import dev.panamax.vmm.Verdict;
import dev.panamax.vmm.api.ApiServer;
import dev.panamax.vmm.api.VmControl;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code panamax ctl} against a real control socket ({@link ApiServer}) served for a VM stand-in. */
class CtlCommandTest {
    @TempDir
    Path dir;

    /** Refuses snapshots into a directory named "full"; otherwise does what it is asked. */
    static final class StandIn implements VmControl {
        volatile String state = Status.RUNNING;
        volatile Path snapshotDir;

        @Override
        public Status status() {
            return new Status(state, 1, 64L << 20, 99);
        }

        @Override
        public void pause() {
            state = Status.PAUSED;
        }

        @Override
        public void resume() {
            state = Status.RUNNING;
        }

        @Override
        public SnapshotResult snapshot(Path d) {
            if (d.getFileName().toString().equals("full")) {
                throw new ControlException("cannot write " + d + ": no space left on device");
            }
            snapshotDir = d;
            return new SnapshotResult(d, 1, 2, 3);
        }

        @Override
        public MigrationResult migrate(Path socket) {
            throw new ControlException("device vfio-pci,host=0000:01:00.0 cannot migrate");
        }
    }

    record Result(int status, String out, String err) {
    }

    static Result ctl(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int status = Main.execute(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(status, out.toString(), err.toString());
    }

    @Test
    void sendsOneRequestAndPrintsTheReply() {
        StandIn vm = new StandIn();
        Path sock = dir.resolve("api.sock");
        try (ApiServer server = ApiServer.start(sock, vm)) {
            Result r = ctl("ctl", "--api-socket", sock.toString(), "status");
            assertEquals(0, r.status(), r.err());
            assertEquals("""
                    {
                      "ok" : true,
                      "state" : "running",
                      "cpus" : 1,
                      "memory_bytes" : 67108864,
                      "uptime_ms" : 99
                    }
                    """, r.out().replace(System.lineSeparator(), "\n"));
            assertEquals("", r.err());
            assertEquals(0, ctl("ctl", "--api-socket", sock.toString(), "pause").status());
            assertEquals(VmControl.Status.PAUSED, vm.state);
            assertEquals(0, ctl("ctl", "--api-socket", sock.toString(), "resume").status());
            assertEquals(VmControl.Status.RUNNING, vm.state);

            r = ctl("ctl", "--api-socket", sock.toString(), "--timeout", "30s", "snapshot", dir.resolve("snap").toString());
            assertEquals(0, r.status(), r.err());
            assertTrue(r.out().contains("\"ram_bytes\" : 1"), r.out());
            assertEquals(dir.resolve("snap"), vm.snapshotDir);
        }
    }

    @Test
    void aRefusalExitsOneWithTheReasonOnStderr() {
        Path sock = dir.resolve("api.sock");
        try (ApiServer server = ApiServer.start(sock, new StandIn())) {
            Result r = ctl("ctl", "--api-socket", sock.toString(), "snapshot", dir.resolve("full").toString());
            assertEquals(CtlCommand.REFUSED_STATUS, r.status());
            assertTrue(r.out().contains("\"ok\" : false"), r.out());
            assertEquals("panamax: error: snapshot: cannot write " + dir.resolve("full") + ": no space left on device",
                    r.err().strip());
            r = ctl("ctl", "--api-socket", sock.toString(), "migrate", "/run/dst.sock");
            assertEquals(1, r.status());
            assertEquals("panamax: error: migrate: device vfio-pci,host=0000:01:00.0 cannot migrate", r.err().strip());
        }
    }

    @Test
    void noReplyExits125() {
        Path sock = dir.resolve("none.sock");
        Result r = ctl("ctl", "--api-socket", sock.toString(), "status");
        assertEquals(Verdict.ERROR_STATUS, r.status());
        assertEquals("panamax: error: cannot connect to the api socket " + sock + ": no such socket (is a panamax running"
                + " with --api-socket " + sock + "?)", r.err().strip());
        assertEquals("", r.out());
    }

    @Test
    void usageErrors() {
        Result r = ctl("ctl", "--api-socket", "/x.sock", "reboot");
        assertEquals(CommandLine.ExitCode.USAGE, r.status());
        assertTrue(r.err().startsWith("unknown command 'reboot' (status, pause, resume, snapshot DIR or migrate SOCKET)"), r.err());
        r = ctl("ctl", "--api-socket", "/x.sock", "snapshot");
        assertEquals(CommandLine.ExitCode.USAGE, r.status());
        assertTrue(r.err().startsWith("snapshot takes one argument"), r.err());
        assertEquals(CommandLine.ExitCode.USAGE, ctl("ctl", "status").status(), "--api-socket is required");
    }

    @Test
    void runAndTestTakeAnApiSocket() {
        RunCommand run = new RunCommand();
        new CommandLine(run).parseArgs("-k", "/vmlinuz", "--api-socket", "/run/vm.sock");
        assertEquals(Path.of("/run/vm.sock"), run.apiSocket);
        TestCommand test = new TestCommand();
        new CommandLine(test).parseArgs("--image", "/img", "--script", "/s.sh");
        assertEquals(null, test.apiSocket);
        new CommandLine(test).parseArgs("--image", "/img", "--script", "/s.sh", "--api-socket", "/run/t.sock");
        assertEquals(Path.of("/run/t.sock"), test.apiSocket);
        assertEquals(List.of("ctl"), List.copyOf(Main.commandLine("ctl", "--help").getSubcommands().keySet()));
    }
}
