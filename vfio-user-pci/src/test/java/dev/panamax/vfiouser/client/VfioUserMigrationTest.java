package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec;
import dev.panamax.vfiouser.protocol.MigDataCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserRegion;
import dev.panamax.vfiouser.server.VfioUserServer;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import static dev.panamax.vfio.VfioDeviceMigState.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Migration v2 between the real {@link VfioUserServer} and {@link VfioUserClient} over real UNIX sockets: a device
 * with a counter and a byte-array register is saved from one server and resumed into a second one; refused arcs,
 * a device without migration, oversized MIG_DATA_WRITE; and servers that lie to the client.
 */
@Timeout(30)
class VfioUserMigrationTest {
    static final int BAR0_SIZE = 4096;

    @TempDir
    Path dir;
    final List<AutoCloseable> open = new ArrayList<>();

    /** A device whose BAR0 is a byte array (offset 0x100..) and a counter (offset 0, +1 per read) while RUNNING. */
    static final class CounterDevice implements MigratableDevice, RegionHandler {
        final byte[] reg = new byte[BAR0_SIZE];
        long counter;
        boolean running = true;
        final List<String> calls = new ArrayList<>();
        long maxState = DEFAULT_MAX_STATE_SIZE;

        @Override
        public synchronized void read(long offset, byte[] into) {
            if (offset == 0 && running) {
                counter++;
            }
            ByteBuffer.wrap(reg).order(ByteOrder.LITTLE_ENDIAN).putLong(0, counter);
            System.arraycopy(reg, (int) offset, into, 0, into.length);
        }

        @Override
        public synchronized void write(long offset, byte[] data) {
            if (offset >= 0x100) {
                System.arraycopy(data, 0, reg, (int) offset, data.length);
            }
        }

        @Override
        public synchronized void stop() {
            calls.add("stop");
            running = false;
        }

        @Override
        public synchronized void resume() {
            calls.add("resume");
            running = true;
        }

        @Override
        public synchronized byte[] saveState() {
            calls.add("save");
            ByteBuffer b = ByteBuffer.allocate(4 + 8 + reg.length).order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(0x4d494731).putLong(counter).put(reg);
            return b.array();
        }

        @Override
        public synchronized void loadState(byte[] state) {
            calls.add("load");
            if (state.length != 4 + 8 + reg.length) {
                throw new IllegalArgumentException("state of " + state.length + " bytes");
            }
            ByteBuffer b = ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN);
            if (b.getInt() != 0x4d494731) {
                throw new IllegalArgumentException("bad magic");
            }
            counter = b.getLong();
            b.get(reg);
        }

        @Override
        public long maxStateSize() {
            return maxState;
        }
    }

    VfioUserClient serve(CounterDevice d, boolean migratable, String name, long clientMaxXfer) throws Exception {
        VfioUserDevice.Builder b = VfioUserDevice.builder(VfioUserDevice.pciFunction(name, 0x1af4, 0x10ff, 0xff0000, 0))
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), BAR0_SIZE, d));
        if (migratable) {
            b.migration(d);
        }
        return serve(dir, open, b.build(), name, VfioUserClient.Options.defaults().withPostedWrites(false)
                .withMaxDataXferSize(clientMaxXfer)).client();
    }

    /** A started server and the client connected to it. */
    record Served(VfioUserClient client, VfioUserServer server) {
    }

    /** Serves {@code device} on {@code dir/name.sock} and connects a client with {@code options}; both go into {@code open}. */
    static Served serve(Path dir, List<AutoCloseable> open, VfioUserDevice device, String name, VfioUserClient.Options options)
            throws Exception {
        Path socket = dir.resolve(name + ".sock");
        CompletableFuture<VfioUserServer> accepted = CompletableFuture.supplyAsync(() -> {
            VfioUserServer s = VfioUserServer.accept(socket, device, Duration.ofSeconds(10));
            s.start();
            return s;
        });
        VfioUserClient c = VfioUserClientTest.connectWhenListening(socket, options);
        VfioUserServer s = accepted.get();
        open.add(s);
        open.add(c);
        return new Served(c, s);
    }

    @AfterEach
    void tearDown() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    static long readCounter(VfioUserClient c) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(8);
            c.regionRead(0, 0, m);
            return m.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0);
        }
    }

    static void writeReg(VfioUserClient c, int offset, byte[] data) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment m = a.allocate(data.length);
            MemorySegment.copy(data, 0, m, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, data.length);
            c.regionWrite(0, offset, m);
        }
    }

    @Test
    void stateMovesFromOneServerToAnother() throws Exception {
        CounterDevice d1 = new CounterDevice();
        // 4096-byte chunks: the state (4108 bytes) takes two MIG_DATA_READs and two MIG_DATA_WRITEs.
        VfioUserClient c1 = serve(d1, true, "src", 4096);
        assertNotNull(c1.serverCapabilities().migration(), "the VERSION reply offers the migration capability");
        assertEquals(4096, c1.serverCapabilities().migration().pgsize());
        for (int i = 0; i < 5; i++) {
            readCounter(c1);
        }
        byte[] pattern = "register contents survive".getBytes();
        writeReg(c1, 0x100, pattern);
        VfioUserMigration m1 = c1.migration();
        assertEquals(1L, m1.probe().orElseThrow(), "VFIO_MIGRATION_STOP_COPY only");
        assertEquals(RUNNING, m1.state());
        m1.setState(STOP);
        long stopped = readCounter(c1);
        assertEquals(stopped, readCounter(c1), "a stopped device does not count");
        m1.setState(STOP_COPY);
        byte[] data = m1.readAll(1 << 20);
        assertEquals(4 + 8 + BAR0_SIZE, data.length);
        assertEquals(0, m1.readAll(1 << 20).length, "after the end, 0 bytes again");
        assertEquals(List.of("stop", "save"), d1.calls);

        CounterDevice d2 = new CounterDevice();
        VfioUserClient c2 = serve(d2, true, "dst", 4096);
        VfioUserMigration m2 = c2.migration();
        m2.setState(STOP);
        m2.setState(RESUMING);
        m2.writeAll(data);
        m2.setState(STOP);
        m2.setState(RUNNING);
        assertEquals(List.of("stop", "load", "resume"), d2.calls);
        assertEquals(d1.counter, d2.counter);
        assertArrayEquals(d1.reg, d2.reg);
        assertEquals(stopped + 1, readCounter(c2), "the second device counts on from the first's count");

        // The source may resume: STOP_COPY -> RUNNING goes through STOP.
        m1.setState(RUNNING);
        assertEquals(List.of("stop", "save", "resume"), d1.calls);
        assertEquals(RUNNING, m1.state());
    }

    @Test
    void combinationTransitionsTakeEveryArc() throws Exception {
        CounterDevice d = new CounterDevice();
        VfioUserMigration m = serve(d, true, "combo", 1 << 20).migration();
        m.setState(STOP_COPY);
        assertEquals(List.of("stop", "save"), d.calls);
        assertEquals(4108, m.readAll(1 << 20).length, "one chunk");
        m.setState(RESUMING); // STOP_COPY -> STOP -> RESUMING
        assertEquals(RESUMING, m.state());
    }

    @Test
    void refusedArcsLeaveTheStateAlone() throws Exception {
        CounterDevice d = new CounterDevice();
        VfioUserClient c = serve(d, true, "refuse", 1 << 20);
        VfioUserMigration m = c.migration();
        for (VfioDeviceMigState bad : new VfioDeviceMigState[]{ERROR, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P}) {
            VfioUserClientException e = assertThrows(VfioUserClientException.class, () -> m.setState(bad));
            assertEquals(Errno.EINVAL, e.errno(), bad.toString());
            assertEquals(RUNNING, m.state());
        }
        assertTrue(d.calls.isEmpty());
        // MIG_DATA in the wrong state.
        assertEquals(Errno.EINVAL, assertThrows(VfioUserClientException.class, () -> m.readAll(1 << 20)).errno());
        assertEquals(Errno.EINVAL, assertThrows(VfioUserClientException.class, () -> m.writeAll(new byte[4])).errno());
        // RESUMING with data the device refuses: EINVAL, still RESUMING; DEVICE_RESET brings RUNNING.
        m.setState(RESUMING);
        m.writeAll(new byte[10]);
        assertEquals(Errno.EINVAL, assertThrows(VfioUserClientException.class, () -> m.setState(RUNNING)).errno());
        assertEquals(RESUMING, m.state());
        c.reset();
        assertEquals(RUNNING, m.state());
        assertFalse(c.isBroken());
    }

    @Test
    void deviceWithoutMigrationAnswersENOTTY() throws Exception {
        VfioUserClient c = serve(new CounterDevice(), false, "plain", 1 << 20);
        assertNull(c.serverCapabilities().migration());
        assertTrue(c.migration().probe().isEmpty());
        assertEquals(Errno.ENOTTY, assertThrows(VfioUserClientException.class, () -> c.migration().state()).errno());
        assertEquals(Errno.ENOTTY, assertThrows(VfioUserClientException.class, () -> c.migration().setState(STOP)).errno());
        assertEquals(Errno.EINVAL, assertThrows(VfioUserClientException.class, () -> c.migration().writeAll(new byte[1])).errno());
        assertFalse(c.isBroken());
    }

    @Test
    void oversizedMigDataWriteIsRefused() throws Exception {
        CounterDevice d = new CounterDevice();
        d.maxState = 5000;
        VfioUserMigration m = serve(d, true, "big", 4096).migration();
        m.setState(RESUMING);
        VfioUserClientException e = assertThrows(VfioUserClientException.class, () -> m.writeAll(new byte[6000]));
        assertEquals(Errno.E2BIG, e.errno());
        assertEquals(RESUMING, m.state());
    }

    // ---- servers that lie ----

    FakeServer fake(FakeServer.Handler h) {
        FakeServer s = new FakeServer(dir.resolve("fake.sock"), FakeServer.caps(1, 4096), h);
        open.add(s);
        return s;
    }

    VfioUserClient connectFake() throws Exception {
        VfioUserClient c = VfioUserClientTest.connectWhenListening(dir.resolve("fake.sock"),
                VfioUserClient.Options.defaults().withRequestTimeout(Duration.ofMillis(500)));
        open.add(c);
        return c;
    }

    static ByteBuf feature(int flags, byte[] data) {
        ByteBuf b = Unpooled.buffer();
        DeviceFeatureCodec.encode(DeviceFeatureCodec.Feature.of(flags, data), b);
        return b;
    }

    @Test
    void aServerAnsweringAnUnknownStateBreaksTheDevice() throws Exception {
        fake((m, s) -> s.reply(m.header(), feature(2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(42, -1)))));
        VfioUserClient c = connectFake();
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().state());
        assertTrue(e.getMessage().contains("42"), e.getMessage());
    }

    @Test
    void aServerAnsweringAnotherStateBreaksTheDevice() throws Exception {
        fake((m, s) -> s.reply(m.header(), feature(2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(RUNNING.code(), -1)))));
        VfioUserClient c = connectFake();
        assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().setState(STOP));
    }

    @Test
    void aShortFeatureReplyBreaksTheDevice() throws Exception {
        fake((m, s) -> s.reply(m.header(), feature(2, new byte[4])));
        VfioUserClient c = connectFake();
        assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().state());
    }

    @Test
    void migrationFlagsWithoutStopCopyBreakTheDevice() throws Exception {
        fake((m, s) -> {
            boolean probe = (m.payload()[6] & 4) != 0; // flags bit 18 (byte 6, bit 2): PROBE
            s.reply(m.header(), feature(1 | (1 << 16), probe ? new byte[0]
                    : DeviceFeatureCodec.encodeMigrationInfo(new DeviceFeatureCodec.MigrationInfo(2))));
        });
        VfioUserClient c = connectFake();
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().probe());
        assertTrue(e.getMessage().contains("STOP_COPY"), e.getMessage());
    }

    @Test
    void endlessMigrationDataIsCutAtTheClientsBound() throws Exception {
        fake((m, s) -> {
            ByteBuf b = Unpooled.buffer();
            MigDataCodec.encode(MigDataCodec.Data.of(new byte[1000]), b);
            s.reply(m.header(), b);
        });
        VfioUserClient c = connectFake();
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().readAll(10_000));
        assertTrue(e.getMessage().contains("10000"), e.getMessage());
    }

    @Test
    void moreDataThanAskedBreaksTheDevice() throws Exception {
        fake((m, s) -> {
            ByteBuf b = Unpooled.buffer();
            MigDataCodec.encode(MigDataCodec.Data.of(new byte[4097]), b); // above the 4096 asked
            s.reply(m.header(), b);
        });
        VfioUserClient c = connectFake();
        assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().readAll(1 << 20));
    }

    @Test
    void aSizeThatLiesBreaksTheDevice() throws Exception {
        fake((m, s) -> {
            ByteBuf b = Unpooled.buffer().writeIntLE(8 + 100).writeIntLE(100).writeZero(50);
            s.reply(m.header(), b);
        });
        VfioUserClient c = connectFake();
        assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().readAll(1 << 20));
    }

    @Test
    void aSilentServerTimesOut() throws Exception {
        fake((m, s) -> { });
        VfioUserClient c = connectFake();
        VfioUserDeviceBrokenException e = assertThrows(VfioUserDeviceBrokenException.class, () -> c.migration().state());
        assertTrue(e.getMessage().contains("500 ms"), e.getMessage());
        assertEquals(VfioUserCommand.DEVICE_FEATURE, ((FakeServer) open.getFirst()).requests.getFirst().command());
    }
}
