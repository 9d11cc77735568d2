package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.MemFd;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec.SubRegion;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.core.sys.Errno;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ioeventfds from the server's side, over a real socketpair: DEVICE_GET_REGION_IO_FDS and the signal path. */
class IoEventFdServerTest {
    record Write(long offset, byte[] data) {
    }

    final BlockingQueue<Write> writes = new LinkedBlockingQueue<>();
    VfioUserServer server;
    TestClient client;

    RegionHandler recording() {
        return new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
            }

            @Override
            public void write(long offset, byte[] data) {
                writes.add(new Write(offset, data.clone()));
            }
        };
    }

    VfioUserDevice.Builder builder() {
        PciFunction f = VfioUserDevice.pciFunction("bells", 1, 2, 0x018000, 0);
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, PciBar.memory32(0x1000), null);
        return VfioUserDevice.builder(f).bar(0, recording()).bar(1, recording());
    }

    void serve(VfioUserDevice device) {
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], device);
        server.start();
        client = new TestClient(pair[0], 0, 4096);
        client.version(); // max_msg_fds 8
    }

    @AfterEach
    void tearDown() {
        if (client != null) {
            client.close();
        }
        if (server != null) {
            server.close();
        }
    }

    static void signal(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment one = a.allocateFrom(JAVA_LONG, 1L);
            assertEquals(8, Libc.writeRaw(fd, one));
        }
    }

    ReceivedMessage ioFds(long argsz, int index) {
        return client.call(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                new DeviceGetRegionIoFdsCodec.Request(argsz, index), b)));
    }

    @Test
    void theClientGetsOneFdPerDoorbellAndASignalIsARegionWrite() throws Exception {
        serve(builder().ioeventfd(0, 0x100, 2, OptionalLong.of(3)).ioeventfd(0, 0x100, 2, OptionalLong.of(4))
                .ioeventfd(0, 0x200, 0, OptionalLong.empty()).build());
        try (ReceivedMessage m = ioFds(16 + 40 * 8, 0)) {
            assertFalse(m.header().isError());
            var r = DeviceGetRegionIoFdsCodec.decodeReply(m.payloadBuffer());
            int ioeventfd = vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD();
            assertEquals(List.of(new SubRegion(0x100, 2, 0, ioeventfd, VfioUserServer.KVM_IOEVENTFD_FLAG_DATAMATCH, 3),
                    new SubRegion(0x100, 2, 1, ioeventfd, VfioUserServer.KVM_IOEVENTFD_FLAG_DATAMATCH, 4),
                    new SubRegion(0x200, 0, 2, ioeventfd, 0, 0)), r.subRegions());
            assertEquals(3, m.fds().count());

            signal(m.fds().peek(1));
            Write w = writes.poll(5, TimeUnit.SECONDS);
            assertNotNull(w);
            assertEquals(0x100, w.offset());
            assertArrayEquals(new byte[]{4, 0}, w.data());
            signal(m.fds().peek(2));
            w = writes.poll(5, TimeUnit.SECONDS);
            assertNotNull(w);
            assertEquals(0x200, w.offset());
            assertEquals(0, w.data().length, "no datamatch: the value is not known");
        }
        // The client closed its copies (the message did): the server goes on, and a second ask gives working fds.
        client.ok(VfioUserCommand.REGION_WRITE, payload(b -> RegionWriteCodec.encode(new RegionWriteCodec.Request(0x10, 0, new byte[]{7}), b)));
        assertEquals(0x10, writes.poll(5, TimeUnit.SECONDS).offset());
        try (ReceivedMessage m = ioFds(16 + 40 * 8, 0)) {
            signal(m.fds().peek(0));
            assertArrayEquals(new byte[]{3, 0}, writes.poll(5, TimeUnit.SECONDS).data());
        }
    }

    @Test
    void aShortArgszGetsTheSizeAndNoFdsAndOtherRegionsNoneOrEinval() throws Exception {
        serve(builder().ioeventfd(0, 0x100, 4, OptionalLong.of(1)).build());
        try (ReceivedMessage m = ioFds(16, 0)) {
            var r = DeviceGetRegionIoFdsCodec.decodeReply(m.payloadBuffer());
            assertEquals(16 + 40, r.argsz());
            assertEquals(1, r.count());
            assertEquals(0, m.fds().count());
        }
        try (ReceivedMessage m = ioFds(16 + 40 * 8, 1)) {
            assertEquals(0, DeviceGetRegionIoFdsCodec.decodeReply(m.payloadBuffer()).count());
            assertEquals(0, m.fds().count());
        }
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                new DeviceGetRegionIoFdsCodec.Request(16, 5), b))));
    }

    @Test
    void noMoreFdsThanTheClientsMaxMsgFds() {
        VfioUserDevice.Builder b = builder();
        for (int i = 0; i < 10; i++) {
            b.ioeventfd(0, 0x100 + 4L * i, 0, OptionalLong.empty());
        }
        serve(b.build());
        try (ReceivedMessage m = ioFds(16 + 40 * 16, 0)) {
            assertEquals(8, DeviceGetRegionIoFdsCodec.decodeReply(m.payloadBuffer()).count());
            assertEquals(8, m.fds().count());
        }
    }

    @Test
    void closingTheServerStopsItsIoeventfdThread() throws Exception {
        serve(builder().ioeventfd(0, 0x100, 0, OptionalLong.empty()).build());
        assertTrue(threadAlive());
        server.close();
        assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)));
        assertFalse(threadAlive());
        server = null;
    }

    static boolean threadAlive() {
        return Thread.getAllStackTraces().keySet().stream().anyMatch(t -> t.getName().equals("vfio-user-ioeventfd") && t.isAlive());
    }

    @Test
    void badDoorbellsAreRefused() {
        try (MemFd mem = new MemFd("bar2", 4096)) {
            PciFunction f = VfioUserDevice.pciFunction("bells", 1, 2, 0x018000, 0);
            f.setBar(0, PciBar.memory32(0x1000), null);
            VfioUserDevice.Builder b = VfioUserDevice.builder(f).bar(0, recording()).region(VfioUserRegion.memfd(2, mem));
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(1, 0, 0, OptionalLong.empty()), "no region 1");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(2, 0, 0, OptionalLong.empty()), "a memfd region");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(vfio_h.VFIO_PCI_NUM_REGIONS(), 0, 0, OptionalLong.empty()));
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0, 3, OptionalLong.empty()), "size 3");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0, 0, OptionalLong.of(1)), "datamatch without size");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0, 1, OptionalLong.of(0x100)), "datamatch too wide");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0xFFE, 4, OptionalLong.empty()), "past the end");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0x1000, 0, OptionalLong.empty()), "at the end");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, -4, 0, OptionalLong.empty()), "negative");
            b.ioeventfd(0, 0x10, 2, OptionalLong.of(1));
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0x10, 2, OptionalLong.of(1)), "twice");
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0x10, 2, OptionalLong.empty()), "overlaps any value");
            for (int i = 1; i < VfioUserDevice.MAX_IOEVENTFDS_PER_REGION; i++) {
                b.ioeventfd(0, 0x100 + 4L * i, 0, OptionalLong.empty());
            }
            assertThrows(IllegalArgumentException.class, () -> b.ioeventfd(0, 0x800, 0, OptionalLong.empty()), "too many");
            assertEquals(VfioUserDevice.MAX_IOEVENTFDS_PER_REGION, b.build().ioEventFds(0).size());
        }
    }

    @Test
    void theWrittenBytesAreTheDatamatchLittleEndian() {
        assertArrayEquals(new byte[]{0x34, 0x12, 0, 0}, new VfioUserDevice.IoEventFd(0, 0, 4, OptionalLong.of(0x1234)).written());
        assertArrayEquals(new byte[0], new VfioUserDevice.IoEventFd(0, 0, 2, OptionalLong.empty()).written());
        assertArrayEquals(new byte[]{1}, new VfioUserDevice.IoEventFd(0, 0, 1, OptionalLong.of(1)).written());
    }
}
