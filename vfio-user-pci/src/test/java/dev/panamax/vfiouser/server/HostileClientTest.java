package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.MemFd;
import dev.panamax.core.sys.OpenFds;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Issue 15, defects 5, 6 and 12 (server side): a client that pipelines big messages or fds while the device is
 * busy, one that stops in the middle of a message, one that never says VERSION. Each time the server stays bounded
 * (it stops reading), drops the client with one line where it must, and its fds are back afterwards.
 */
@Timeout(30)
class HostileClientTest {
    static final long BAR0_SIZE = 4096;
    final CountDownLatch deviceBusy = new CountDownLatch(1);
    final CountDownLatch release = new CountDownLatch(1);
    final byte[] bar0 = new byte[(int) BAR0_SIZE];
    final List<String> fdsBefore = OpenFds.ipcTargets();
    VfioUserServer server;
    TestClient client;

    VfioUserDevice device() {
        PciFunction config = VfioUserDevice.pciFunction("hostile", 0x4e58, 0x0002, 0x018000, 2);
        config.setBar(0, PciBar.memory32(BAR0_SIZE), null);
        RegionHandler bar0Handler = new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
                System.arraycopy(bar0, (int) offset, into, 0, into.length);
            }

            @Override
            public void write(long offset, byte[] data) {
                if (offset == 0x10) { // the "busy" register: the device takes its time
                    deviceBusy.countDown();
                    try {
                        release.await(20, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                System.arraycopy(data, 0, bar0, (int) offset, data.length);
            }
        };
        return VfioUserDevice.builder(config)
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), BAR0_SIZE, bar0Handler))
                .build();
    }

    void start(VfioUserServer.Deadlines deadlines) {
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], device(), deadlines);
        client = new TestClient(pair[0], 0, 0);
        server.start();
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        release.countDown();
        if (client != null) {
            client.close();
        }
        if (server != null) {
            assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "server saw the disconnect");
            server.close();
        }
        assertEquals(fdsBefore, OpenFds.ipcTargets(), "sockets, memfds and eventfds after close");
    }

    /** The server still serves this client: a register written and read back. */
    void assertServes() {
        client.ok(VfioUserCommand.REGION_WRITE, payload(b -> RegionWriteCodec.encode(
                new RegionWriteCodec.Request(0x20, 0, new byte[] {1, 2, 3, 4}), b)));
        ByteBuf r = client.ok(VfioUserCommand.REGION_READ, payload(b -> RegionReadCodec.encode(
                new RegionReadCodec.Request(0x20, 0, 4), b)));
        assertArrayEquals(new byte[] {1, 2, 3, 4}, RegionReadCodec.decodeReply(r, 1 << 20).data());
    }

    /** Sends the write that keeps the device busy, without waiting for its reply (ID 1). */
    void makeTheDeviceBusy() throws InterruptedException {
        client.channel.sendCommand(1, VfioUserCommand.REGION_WRITE, false,
                payload(b -> RegionWriteCodec.encode(new RegionWriteCodec.Request(0x10, 0, new byte[4]), b)));
        assertTrue(deviceBusy.await(5, TimeUnit.SECONDS));
    }

    /** Waits until {@code count} stops moving for 500 ms. */
    static int settled(AtomicInteger count) throws InterruptedException {
        int last = -1;
        while (count.get() != last) {
            last = count.get();
            Thread.sleep(500);
        }
        return last;
    }

    /** Reads {@code n} replies (IDs 1..n in order), counting the errors. */
    int replies(int n) {
        int errors = 0;
        for (int i = 1; i <= n; i++) {
            try (ReceivedMessage m = client.channel.receive(Duration.ofSeconds(10))) {
                assertTrue(m.header().isReply());
                assertEquals(i, m.header().messageId());
                errors += m.header().isError() ? 1 : 0;
            }
        }
        return errors;
    }

    /**
     * Defect 5: 40 pipelined 1 MiB REGION_WRITEs while the device is busy. The server reads a bounded number of
     * bytes (then stops reading, so the client's sends block); once the device is done, every request is answered
     * and the server still serves.
     */
    @Test
    void pipelinedMegabyteRequestsAreNotReadWhileTheDeviceIsBusy() throws Exception {
        start(VfioUserServer.Deadlines.DEFAULT);
        client.version();
        makeTheDeviceBusy();
        int n = 40;
        AtomicInteger sent = new AtomicInteger();
        byte[] mib = new byte[1 << 20];
        Thread sender = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < n; i++) {
                // 1 MiB into a 4 KiB region: refused, but only once the server reads it.
                client.channel.sendCommand(2 + i, VfioUserCommand.REGION_WRITE, false,
                        payload(b -> RegionWriteCodec.encode(new RegionWriteCodec.Request(0, 0, mib), b)));
                sent.incrementAndGet();
            }
        });
        int taken = settled(sent);
        assertTrue(taken <= 8, "the server took " + taken + " of " + n + " pipelined 1 MiB requests while busy");
        release.countDown();
        assertEquals(n, replies(1 + n), "the 1 MiB writes fail (EINVAL), the busy write succeeds");
        sender.join(5000);
        assertFalse(sender.isAlive());
        assertServes();
    }

    /**
     * Defect 5: 200 pipelined DMA_MAPs, each with a memfd, while the device is busy: the server holds a bounded
     * number of received fds (the rest wait in the socket, owned by the kernel); afterwards every map is answered.
     */
    @Test
    void pipelinedFdsAreNotReadWhileTheDeviceIsBusy() throws Exception {
        start(VfioUserServer.Deadlines.DEFAULT);
        client.version();
        try (MemFd memory = new MemFd("dma", 4096)) {
            int before = OpenFds.byNumber().size();
            makeTheDeviceBusy();
            int n = 200;
            AtomicInteger sent = new AtomicInteger();
            Thread sender = Thread.ofPlatform().start(() -> {
                for (int i = 0; i < n; i++) {
                    long iova = 0x100000L * (i + 1);
                    client.channel.sendCommand(2 + i, VfioUserCommand.DMA_MAP, false, payload(b -> DmaMapCodec.encode(
                            new DmaMapCodec.Request(3, 0, iova, 4096), b)),
                            memory.fd());
                    sent.incrementAndGet();
                }
            });
            settled(sent);
            int held = OpenFds.byNumber().size() - before;
            assertTrue(held <= 40, "the server holds " + held + " fds of " + sent.get() + " pipelined DMA_MAPs while busy");
            release.countDown();
            assertEquals(0, replies(1 + n), "every map succeeds");
            sender.join(5000);
            assertFalse(sender.isAlive());
            assertServes();
        }
    }

    /** Defect 6: a client that sends half a header and stalls is dropped at the message deadline. */
    @Test
    void halfAHeaderThenSilenceIsDroppedAtTheMessageDeadline() throws Exception {
        start(new VfioUserServer.Deadlines(Duration.ofSeconds(20), Duration.ofMillis(500)));
        client.version();
        assertServes();
        ByteBuf header = Unpooled.buffer();
        VfioUserHeader.command(50, VfioUserCommand.REGION_READ, RegionReadCodec.SIZE, false).encode(header);
        client.sendRaw(header.slice(0, 8));
        long t0 = System.nanoTime();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(3)), "the server still waits for the rest of the header");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 300, "dropped after " + ms + " ms, before the deadline");
    }

    /** Defect 12: a client that connects and says nothing is dropped at the VERSION deadline. */
    @Test
    void aSilentClientIsDroppedAtTheVersionDeadline() throws Exception {
        start(new VfioUserServer.Deadlines(Duration.ofMillis(500), Duration.ofSeconds(5)));
        long t0 = System.nanoTime();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(3)), "the server still waits for VERSION");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(ms >= 300, "dropped after " + ms + " ms, before the deadline");
    }

    /** Defect 12: a client that keeps sending other requests but never VERSION is dropped at the deadline too. */
    @Test
    void aClientThatNeverNegotiatesIsDroppedAtTheVersionDeadline() throws Exception {
        start(new VfioUserServer.Deadlines(Duration.ofMillis(500), Duration.ofSeconds(5)));
        long t0 = System.nanoTime();
        boolean dropped = false;
        while (!dropped && System.nanoTime() - t0 < 3_000_000_000L) {
            try {
                client.error(VfioUserCommand.REGION_READ, payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(0, 0, 4), b)));
                Thread.sleep(50);
            } catch (RuntimeException e) {
                dropped = true; // the server closed the connection
            }
            dropped |= server.awaitDisconnect(Duration.ZERO);
        }
        assertTrue(dropped, "the server still serves a client that never said VERSION");
    }
}
