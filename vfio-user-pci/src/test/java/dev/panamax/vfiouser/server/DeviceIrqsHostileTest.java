package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.SocketLibc;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A hostile client's interrupt fds, over a real socketpair: a fd that is no eventfd, an eventfd whose counter is
 * saturated (a write would block), an INTx unmask fd whose peer hangs up. The server must refuse, drop or stop
 * watching, and go on serving (issue 15, defects 4 and 11).
 */
class DeviceIrqsHostileTest {
    static final int TRIGGER_EVENTFD = vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
    static final int UNMASK_EVENTFD = vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | vfio_h.VFIO_IRQ_SET_ACTION_UNMASK();
    static final int INTX = vfio_h.VFIO_PCI_INTX_IRQ_INDEX();
    static final int MSIX = vfio_h.VFIO_PCI_MSIX_IRQ_INDEX();

    VfioUserServer server;
    TestClient client;

    @BeforeEach
    void setUp() {
        PciFunction config = VfioUserDevice.pciFunction("hostile-irqs", 0x4e58, 0x0001, 0x018000, 1);
        VfioUserDevice device = VfioUserDevice.builder(config)
                .irqs(INTX, 1)
                .irqs(MSIX, 2)
                .build();
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], device);
        client = new TestClient(pair[0], 0x40000, 0x1000);
        server.start();
        client.version();
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        client.close();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "server saw the disconnect");
        server.close();
    }

    private int setIrqs(boolean ok, int flags, int index, int start, int count, int... fds) {
        var p = payload(b -> DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(flags, index, start, count, new byte[0]), b));
        if (ok) {
            client.ok(VfioUserCommand.DEVICE_SET_IRQS, p, fds);
            return 0;
        }
        return client.error(VfioUserCommand.DEVICE_SET_IRQS, p, fds);
    }

    /** The server still answers a fresh request. */
    private void assertServing() {
        var info = DeviceGetIrqInfoCodec.decodeReply(client.ok(VfioUserCommand.DEVICE_GET_IRQ_INFO,
                payload(b -> DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(MSIX), b))));
        assertEquals(2, info.count());
    }

    /** A FIFO opened read-write: a pipe fd, no eventfd. */
    private static int pipeFd(Path dir) throws Exception {
        Path fifo = dir.resolve("fifo");
        Process p = new ProcessBuilder("mkfifo", fifo.toString()).inheritIO().start();
        assertTrue(p.waitFor(10, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue());
        return Libc.open(fifo.toString(), Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC);
    }

    @Test
    void aPipeIsRefusedAsATriggerOrUnmaskFd(@TempDir Path dir) throws Exception {
        int pipe = pipeFd(dir);
        int[] sockets = SocketLibc.socketpair(SocketLibc.AF_UNIX, SocketLibc.SOCK_STREAM | SocketLibc.SOCK_CLOEXEC, 0);
        try (EventFd good = new EventFd(true)) {
            assertEquals(Errno.EINVAL, setIrqs(false, TRIGGER_EVENTFD, MSIX, 0, 1, pipe));
            assertEquals(Errno.EINVAL, setIrqs(false, TRIGGER_EVENTFD, MSIX, 0, 1, sockets[0]));
            // One bad fd among good ones: nothing of the request is applied.
            assertEquals(Errno.EINVAL, setIrqs(false, TRIGGER_EVENTFD, MSIX, 0, 2, good.fd(), pipe));
            assertFalse(server.irqs().assigned(MSIX, 0), "a refused request assigns nothing");
            assertEquals(Errno.EINVAL, setIrqs(false, UNMASK_EVENTFD, INTX, 0, 1, pipe));
            assertEquals(Errno.EINVAL, setIrqs(false, UNMASK_EVENTFD, INTX, 0, 1, sockets[0]));
            assertServing();
            setIrqs(true, TRIGGER_EVENTFD, MSIX, 0, 1, good.fd());
            assertTrue(server.irqs().trigger(MSIX, 0));
            assertEquals(1, good.read());
        } finally {
            Libc.close(pipe);
            Libc.close(sockets[0]);
            Libc.close(sockets[1]);
        }
    }

    /**
     * An eventfd at 0xfffffffffffffffe, the most it holds: a blocking write of 1 would wait until someone reads it.
     * The device's trigger returns at once (the interrupt is pending anyway), and the server goes on serving.
     */
    @Test
    void aSaturatedBlockingEventfdDoesNotWedgeTheServer() throws Exception {
        try (EventFd blocking = new EventFd(false); Arena arena = Arena.ofConfined()) {
            MemorySegment max = arena.allocate(JAVA_LONG);
            max.set(JAVA_LONG, 0, 0xffff_ffff_ffff_fffeL);
            assertEquals(8, Libc.writeRaw(blocking.fd(), max));
            setIrqs(true, TRIGGER_EVENTFD, MSIX, 0, 1, blocking.fd());
            CompletableFuture<Boolean> trigger = new CompletableFuture<>();
            Thread device = Thread.ofPlatform().daemon().name("test-device-trigger").start(() -> {
                try {
                    trigger.complete(server.irqs().trigger(MSIX, 0));
                } catch (Throwable t) {
                    trigger.completeExceptionally(t);
                }
            });
            try {
                assertTrue(trigger.get(2, TimeUnit.SECONDS), "the trigger returned: the interrupt is pending");
                CompletableFuture<Void> served = CompletableFuture.runAsync(() -> {
                    setIrqs(true, TRIGGER_EVENTFD, MSIX, 1, 1, blocking.fd());
                    assertServing();
                });
                served.get(3, TimeUnit.SECONDS);
                assertTrue(server.irqs().trigger(MSIX, 1), "a second trigger returns too");
            } finally {
                blocking.read(); // unblocks a write that blocked
                device.join(5000);
            }
        }
    }

    /**
     * A peer that hangs up the INTx unmask fd (POLLHUP, then end of file): the watcher must stop, not spin. The
     * server now refuses a socket as unmask fd ({@link #aPipeIsRefusedAsATriggerOrUnmaskFd}), so the watcher itself
     * is driven here, over a socketpair: one 8-byte signal unmasks, the hang-up ends the thread, and its CPU time
     * stays near zero.
     */
    @Test
    void theUnmaskWatcherStopsWhenThePeerHangsUp() throws Exception {
        int[] sockets = SocketLibc.socketpair(SocketLibc.AF_UNIX, SocketLibc.SOCK_STREAM | SocketLibc.SOCK_CLOEXEC, 0);
        java.util.concurrent.atomic.AtomicInteger unmasks = new java.util.concurrent.atomic.AtomicInteger();
        Thread watcher = DeviceIrqs.startUnmaskWatcher(sockets[0], unmasks::incrementAndGet);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment one = arena.allocate(JAVA_LONG);
            one.set(JAVA_LONG, 0, 1);
            assertEquals(8, Libc.writeRaw(sockets[1], one));
            for (int i = 0; i < 200 && unmasks.get() == 0; i++) {
                Thread.sleep(10);
            }
            assertEquals(1, unmasks.get(), "a signal unmasks");
            ThreadMXBean mx = ManagementFactory.getThreadMXBean();
            long before = mx.getThreadCpuTime(watcher.threadId());
            Libc.close(sockets[1]); // the watcher's fd now polls POLLIN | POLLHUP and reads end of file
            Thread.sleep(500);
            long after = mx.getThreadCpuTime(watcher.threadId()); // -1 once the thread has ended
            long usedMs = after < 0 ? 0 : (after - before) / 1_000_000;
            assertTrue(usedMs < 50, "the unmask watcher used " + usedMs + " ms of CPU in 500 ms");
            watcher.join(1000);
            assertFalse(watcher.isAlive(), "the watcher stopped watching the hung-up fd");
            assertEquals(1, unmasks.get());
        } finally {
            watcher.interrupt();
            watcher.join(1000);
            Libc.close(sockets[0]);
        }
        assertServing();
    }
}
