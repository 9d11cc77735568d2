package dev.panamax.virtio.blk;

import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Set;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The accept loop on a socket path: one client at a time, close disconnects and removes the socket. */
class VirtioBlkServerTest {
    @TempDir
    Path dir;

    @Test
    void oneClientAtATimeAndCloseDisconnectsAndRemovesTheSocket() throws Exception {
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[8192]);
        Path path = dir.resolve("blk.sock");
        VirtioBlkServer server = new VirtioBlkServer(path, disk, VirtioBlk.Options.DEFAULT);
        Thread loop = Thread.ofPlatform().start(server::run);
        try (TestClient first = new TestClient(UnixSocket.connect(path), 0, 0);
             TestClient second = new TestClient(UnixSocket.connect(path), 0, 0)) {
            first.version();
            // The second client waits in the backlog: its VERSION is not answered while the first is served.
            second.channel.sendCommand(1, VfioUserCommand.VERSION, false,
                    payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0, null), b)));
            assertThrows(ReceiveTimeoutException.class, () -> second.channel.receive(Duration.ofMillis(300)));
            first.close();
            try (ReceivedMessage m = second.channel.receive(TestClient.T)) {
                assertFalse(m.header().isError());
            }
            assertEquals(1, server.clientsServed());
            // Closing the server disconnects the client in service and removes the socket file.
            server.close();
            assertThrows(PeerClosedException.class, () -> second.channel.receive(TestClient.T));
        }
        loop.join(5000);
        assertFalse(loop.isAlive());
        assertFalse(Files.exists(path));
        assertEquals(2, server.clientsServed());
    }

    /** Issue 15, defect 12: a client that connects and says nothing is dropped at the VERSION deadline; the next one is served. */
    @Test
    void aSilentClientIsDroppedAndTheNextOneIsServed() throws Exception {
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[8192]);
        Path path = dir.resolve("blk.sock");
        VirtioBlkServer server = new VirtioBlkServer(path, disk, VirtioBlk.Options.DEFAULT, -1,
                new VfioUserServer.Deadlines(Duration.ofMillis(500), Duration.ofSeconds(5)));
        Thread loop = Thread.ofPlatform().start(server::run);
        try (TestClient silent = new TestClient(UnixSocket.connect(path), 0, 0);
             TestClient next = new TestClient(UnixSocket.connect(path), 0, 0)) {
            next.channel.sendCommand(1, VfioUserCommand.VERSION, false,
                    payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0, null), b)));
            try (ReceivedMessage m = next.channel.receive(Duration.ofSeconds(3))) {
                assertFalse(m.header().isError());
            }
            assertThrows(PeerClosedException.class, () -> silent.channel.receive(TestClient.T), "the silent client was dropped");
        } finally {
            server.close();
            loop.join(5000);
        }
        assertFalse(loop.isAlive());
    }

    /**
     * Issue 15, defect 12: a client of another uid is refused (SO_PEERCRED), unless its uid is allowed; one of our
     * uid is served. The other uid is a real child process (setpriv to uid 65534, python3 as the client), so this
     * needs root, setpriv and python3; the socket is opened to all (0666, dir 0711) for the child to reach it.
     */
    @Test
    void aClientOfAnotherUidIsRefusedUnlessAllowed() throws Exception {
        assumeTrue("root".equals(System.getProperty("user.name")), "needs root to run a client as another uid");
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/setpriv")) && Files.isExecutable(Path.of("/usr/bin/python3")), "needs setpriv and /usr/bin/python3");
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[8192]);
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x"));
        assertEquals("EOF", versionAs(65534, disk, -1), "a client of uid 65534 was served");
        assertEquals("REPLY", versionAs(65534, disk, 65534), "uid 65534 is allowed");
    }

    /** Serves {@code disk} (allowing {@code allowUid}), asks for VERSION as {@code uid}, then as us: the child's answer. */
    private String versionAs(int uid, Path disk, int allowUid) throws Exception {
        Path path = dir.resolve("blk" + allowUid + ".sock");
        VirtioBlkServer server = new VirtioBlkServer(path, disk, VirtioBlk.Options.DEFAULT, allowUid, VfioUserServer.Deadlines.DEFAULT);
        Thread loop = Thread.ofPlatform().start(server::run);
        try {
            assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE), Files.getPosixFilePermissions(path),
                    "the socket's mode");
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-rw-rw-"));
            String script = "import socket,struct,sys\n"
                    + "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)\n"
                    + "try:\n"
                    + "    s.sendall(struct.pack('<HHIIIHH',1,1,20,0,0,0,0)); d=s.recv(16)\n"
                    + "except (BrokenPipeError, ConnectionResetError):\n"
                    + "    d=b''\n"
                    + "print('REPLY' if d else 'EOF')\n";
            Process p = new ProcessBuilder("setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups",
                    "/usr/bin/python3", "-c", script, path.toString()).redirectErrorStream(true).start();
            assumeTrue(p.waitFor(20, java.util.concurrent.TimeUnit.SECONDS), "the child did not end");
            String out = new String(p.getInputStream().readAllBytes()).trim();
            assumeTrue(out.equals("EOF") || out.equals("REPLY"), "the child could not run: " + out);
            // Our own uid is served afterwards.
            try (TestClient us = new TestClient(UnixSocket.connect(path), 0, 0)) {
                us.version();
            }
            return out;
        } finally {
            server.close();
            loop.join(5000);
        }
    }
}
