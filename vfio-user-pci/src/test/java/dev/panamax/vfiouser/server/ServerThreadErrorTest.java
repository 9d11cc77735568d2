package dev.panamax.vfiouser.server;

import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15, defect 9: an Error in the device model on the server's request thread (an OutOfMemoryError, a
 * StackOverflowError, a SIGBUS's InternalError) drops the client with one line and cleans up; no server thread
 * dies with an uncaught exception. (A RuntimeException still fails only its one request with EIO: VfioUserServerTest.)
 */
class ServerThreadErrorTest {
    private static final Duration T = Duration.ofSeconds(5);

    private static void regionReadThrows(Throwable error) throws Exception {
        AtomicReference<Throwable> escaped = new AtomicReference<>();
        Thread.UncaughtExceptionHandler old = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> escaped.set(e));
        UnixSocket[] pair = UnixSocket.pair();
        VfioUserDevice device = VfioUserDevice.builder(VfioUserDevice.pciFunction("error-test", 0x4e58, 2, 0xff0000, 0))
                .region(VfioUserRegion.trapped(0, 4096, new RegionHandler() {
                    @Override
                    public void read(long offset, byte[] into) {
                        throw ServerThreadErrorTest.<RuntimeException>sneaky(error);
                    }

                    @Override
                    public void write(long offset, byte[] data) {
                    }
                }))
                .build();
        VfioUserServer server = new VfioUserServer(pair[1], device);
        server.start();
        try (TestClient client = new TestClient(pair[0], 0, 0)) {
            client.version();
            assertThrows(RuntimeException.class, () -> client.call(VfioUserCommand.REGION_READ,
                    payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(0, 0, 4), b))).close(),
                    "the server dropped the client");
            assertTrue(server.awaitDisconnect(T), "the server cleaned up after the client");
        } finally {
            server.close();
            Thread.setDefaultUncaughtExceptionHandler(old);
        }
        assertNull(escaped.get(), "no server thread died with an uncaught exception");
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> T sneaky(Throwable t) throws T {
        throw (T) t;
    }

    @Test
    void outOfMemoryErrorDropsTheClient() throws Exception {
        regionReadThrows(new OutOfMemoryError("test"));
    }

    @Test
    void stackOverflowErrorDropsTheClient() throws Exception {
        regionReadThrows(new StackOverflowError());
    }

    @Test
    void internalErrorAsFromASigbusDropsTheClient() throws Exception {
        regionReadThrows(new InternalError("a fault occurred in an unsafe memory access"));
    }

    @Test
    void anErrorInTheIntxUnmaskEndsTheWatcherWithOneLine() throws Exception {
        AtomicReference<Throwable> escaped = new AtomicReference<>();
        Thread.UncaughtExceptionHandler old = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> escaped.set(e));
        try (dev.panamax.core.sys.EventFd unmask = new dev.panamax.core.sys.EventFd(true)) {
            java.util.concurrent.CountDownLatch called = new java.util.concurrent.CountDownLatch(1);
            Thread watcher = DeviceIrqs.startUnmaskWatcher(unmask.fd(), () -> {
                called.countDown();
                throw new StackOverflowError();
            });
            unmask.signal();
            assertTrue(called.await(5, java.util.concurrent.TimeUnit.SECONDS));
            watcher.join(5000);
            assertTrue(!watcher.isAlive(), "the watcher stopped");
        } finally {
            Thread.setDefaultUncaughtExceptionHandler(old);
        }
        assertNull(escaped.get(), "no uncaught exception");
    }
}
