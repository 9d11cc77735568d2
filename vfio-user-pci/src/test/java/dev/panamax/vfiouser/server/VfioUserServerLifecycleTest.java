package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;

/** Connecting by socket path, and what is left after the client goes: no fds, no mappings. */
class VfioUserServerLifecycleTest {
    private static final Duration T = Duration.ofSeconds(5);

    /** One whole session: VERSION, a memfd region's fd, a DMA_MAP with a memfd, MSI-X eventfds, then the client closes. */
    private static void session(UnixSocket serverEnd, UnixSocket clientEnd, AtomicInteger disconnects) throws InterruptedException {
        try (MemFd bar2 = new MemFd("bar2", 8192)) {
            VfioUserDevice device = VfioUserDevice.builder(VfioUserDevice.pciFunction("test", 0x4e58, 2, 0xff0000, 0))
                    .region(VfioUserRegion.memfd(2, bar2))
                    .irqs(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 2)
                    .onDisconnect(disconnects::incrementAndGet)
                    .build();
            VfioUserServer server = new VfioUserServer(serverEnd, device);
            server.start();
            try (TestClient client = new TestClient(clientEnd, 0, 0)) {
                client.version();
                try (ReceivedMessage m = client.call(VfioUserCommand.DEVICE_GET_REGION_INFO,
                        payload(b -> DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(256, 2), b)))) {
                    assertEquals(1, m.fds().count());
                }
                try (MemFd guest = new MemFd("guest", 8192); EventFd e0 = new EventFd(true); EventFd e1 = new EventFd(true)) {
                    client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                            dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, 0x10000, 8192), b)), guest.fd());
                    client.ok(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(
                            dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(),
                            vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 2, new byte[0]), b)), e0.fd(), e1.fd());
                    assertEquals(1, server.dma().count());
                    assertTrue(server.irqs().assigned(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 1));
                }
            }
            assertTrue(server.awaitDisconnect(T), "the server saw the client go");
            server.close();
            assertEquals(0, server.dma().count(), "DMA mappings left after disconnect");
            assertFalse(server.irqs().assigned(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0), "eventfd left after disconnect");
            assertThrows(DmaException.class, () -> server.dma().read(0x10000, new byte[1]));
        }
    }

    private static Set<String> openFds() {
        return VfioUserServerTest.openFds();
    }

    @Test
    void disconnectClosesEveryFdAndCallsBack() throws InterruptedException {
        AtomicInteger disconnects = new AtomicInteger();
        UnixSocket[] warm = UnixSocket.pair();
        session(warm[1], warm[0], disconnects); // loads the classes and FFM stubs
        Set<String> before = openFds();
        UnixSocket[] pair = UnixSocket.pair();
        session(pair[1], pair[0], disconnects);
        Set<String> after = openFds();
        after.removeAll(before);
        after.retainAll(openFds()); // the listing's own directory fd comes and goes
        assertTrue(after.isEmpty(), "fds leaked: " + after);
        assertEquals(2, disconnects.get());
    }

    @Test
    void acceptsOneClientOnASocketPath(@TempDir Path dir) throws Exception {
        Path path = dir.resolve("device.sock");
        AtomicInteger disconnects = new AtomicInteger();
        VfioUserDevice device = VfioUserDevice.builder(VfioUserDevice.pciFunction("test", 0x4e58, 3, 0xff0000, 0))
                .onDisconnect(disconnects::incrementAndGet).build();
        CompletableFuture<VfioUserServer> accepted = CompletableFuture.supplyAsync(() -> VfioUserServer.accept(path, device, T));
        UnixSocket s = null;
        for (int i = 0; i < 100 && s == null; i++) {
            try {
                if (Files.exists(path)) {
                    s = UnixSocket.connect(path);
                }
            } catch (dev.panamax.core.sys.LinuxException e) {
                // The file exists from bind, but listen comes after the chmod: refused until then.
                if (e.errno() != 111) { // ECONNREFUSED (asm-generic/errno.h)
                    throw e;
                }
            }
            if (s == null) {
                Thread.sleep(20);
            }
        }
        assertNotNull(s, "the server never listened on " + path);
        VfioUserServer server = accepted.get();
        assertFalse(Files.exists(path), "the socket file is removed once the client is in");
        server.start();
        try (TestClient client = new TestClient(s, 0, 0)) {
            assertEquals(0, client.version().major());
        }
        assertTrue(server.awaitDisconnect(T));
        server.close();
        assertEquals(1, disconnects.get());
    }

    @Test
    void closeByTheOwnerDisconnectsTheClient() throws InterruptedException {
        AtomicInteger disconnects = new AtomicInteger();
        UnixSocket[] pair = UnixSocket.pair();
        VfioUserServer server = new VfioUserServer(pair[1], VfioUserDevice.builder(VfioUserDevice.pciFunction("test", 1, 2, 3, 4))
                .onDisconnect(disconnects::incrementAndGet).build());
        server.start();
        try (TestClient client = new TestClient(pair[0], 0, 0)) {
            client.version();
            server.close();
            assertTrue(server.awaitDisconnect(T));
            assertThrows(dev.panamax.vfiouser.transport.PeerClosedException.class, () -> client.channel.receive(T));
        }
        assertEquals(1, disconnects.get());
    }
}
