package dev.panamax.virtio.blk;

import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;

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
}
