package dev.panamax.virtio.blk;

import dev.panamax.core.sys.MemFd;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.virtio.VirtioPciTransport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static dev.panamax.virtio.blk.VirtioBlk.*;
import static dev.panamax.virtio.blk.VirtioDriver.Desc;
import static dev.panamax.virtio.blk.VirtioDriver.FREE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The migration state of a virtio-blk device on the virtio PCI transport (format "PXVS" version 1, see
 * TransportMigration): devices served over real socketpairs, driven by a driver's messages, state taken with
 * {@link MigratableDevice#saveState} and given to another device with {@link MigratableDevice#loadState}.
 */
class VirtioBlkMigrationTest {
    static final long BASE = 0x1_0000_0000L;
    static final int MEMORY = 1 << 20;
    static final int SECTORS = 64;
    /** Offsets of the format's fields (TransportMigration's table). */
    static final int QUEUE0 = 48;

    /** A device served to a test client, guest memory a memfd. */
    final class Served implements AutoCloseable {
        final VirtioBlk blk;
        final VirtioPciTransport pci;
        final VfioUserServer server;
        final TestClient client;
        final MemFd guest;
        final VirtioDriver driver;
        final MigratableDevice mig;

        Served(Path disk, Options options) {
            blk = new VirtioBlk(disk, options);
            UnixSocket[] pair = UnixSocket.pair();
            pci = new VirtioPciTransport(blk, false);
            server = pci.serve(pair[1]);
            guest = new MemFd("guest", MEMORY);
            client = new TestClient(pair[0], BASE, guest.mapping());
            client.version();
            client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                    vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, BASE, MEMORY), b)), guest.fd());
            driver = new VirtioDriver(client, guest.mapping(), BASE);
            driver.discover();
            mig = pci.vfioUserDevice().migration().orElseThrow();
        }

        /** An OUT request of one sector at {@code sector}, filled with {@code fill}; @return the status byte. */
        int write(long sector, byte fill) {
            driver.header(FREE, VIRTIO_BLK_T_OUT, sector);
            byte[] data = new byte[SECTOR_SIZE];
            Arrays.fill(data, fill);
            driver.put(FREE + 0x100, data);
            driver.put(FREE + 0x1000, new byte[]{(byte) 0xFF});
            driver.submit(new Desc(BASE + FREE, REQUEST_HEADER_SIZE, false), new Desc(BASE + FREE + 0x100, SECTOR_SIZE, false),
                    new Desc(BASE + FREE + 0x1000, 1, true));
            driver.kick();
            return driver.get(FREE + 0x1000, 1)[0];
        }

        @Override
        public void close() throws Exception {
            client.close();
            server.awaitDisconnect(Duration.ofSeconds(5));
            server.close();
            blk.close();
            guest.close();
        }
    }

    @TempDir
    Path dir;
    Path disk;
    final List<AutoCloseable> open = new ArrayList<>();

    @BeforeEach
    void disk() throws Exception {
        disk = dir.resolve("disk.img");
        Files.write(disk, new byte[SECTORS * SECTOR_SIZE]);
    }

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    Served serve(Path d, Options o) {
        Served s = new Served(d, o);
        open.add(s);
        return s;
    }

    /** A source that served three writes, MSI-X vectors programmed, stopped; @return its state. */
    byte[] sourceState() {
        Served a = serve(disk, Options.DEFAULT);
        a.driver.init(VirtioBlkTest.FEATURES, 64, 0, 1);
        for (int i = 0; i < 3; i++) {
            assertEquals(VIRTIO_BLK_S_OK, a.write(i, (byte) (i + 1)));
        }
        assertEquals(3, a.driver.usedIdx());
        a.driver.write(VirtioPciTransport.MSIX_BAR, 16, 4, 0xFEE0_1000L); // vector 1's address, low half
        a.driver.write(VirtioPciTransport.MSIX_BAR, 16 + 8, 4, 0x41);    // vector 1's data
        a.mig.stop();
        return a.mig.saveState();
    }

    static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void theStateRoundTripsAndSaysWhatTheDriverSet() {
        byte[] s = sourceState();
        ByteBuffer b = le(s);
        assertEquals(0x53565850, b.getInt(0), "magic PXVS");
        assertEquals(1, b.getShort(4), "version");
        assertEquals(1, b.getShort(6), "one queue");
        assertEquals(2, b.getShort(8), "MSI-X vectors: config + one queue");
        assertEquals(STATE_SIZE, b.getInt(12), "virtio-blk's part");
        assertEquals(16 + 32 + 40 + 2 * 16 + STATE_SIZE, s.length);
        assertEquals(0x0F, b.get(16), "ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK");
        assertEquals(0, b.getShort(18), "msix_config");
        assertEquals(VirtioBlkTest.FEATURES, b.getLong(32), "negotiated features");
        assertEquals(64, b.getShort(QUEUE0), "queue_size");
        assertEquals(1, b.getShort(QUEUE0 + 2), "queue_msix_vector");
        assertEquals(1, b.get(QUEUE0 + 4), "enabled");
        assertEquals(BASE + VirtioDriver.DESC, b.getLong(QUEUE0 + 8));
        assertEquals(BASE + VirtioDriver.AVAIL, b.getLong(QUEUE0 + 16));
        assertEquals(BASE + VirtioDriver.USED, b.getLong(QUEUE0 + 24));
        assertEquals(3, b.getShort(QUEUE0 + 32), "last_avail_idx");
        assertEquals(3, b.getShort(QUEUE0 + 34), "used idx");
        assertEquals(0xFEE0_1000, b.getInt(QUEUE0 + 40 + 16), "MSI-X vector 1 address");
        assertEquals(0x41, b.getInt(QUEUE0 + 40 + 24), "MSI-X vector 1 data");
        assertEquals(SECTORS, b.getLong(QUEUE0 + 40 + 32), "capacity");

        Served dst = serve(disk, Options.DEFAULT);
        dst.mig.stop();
        dst.mig.loadState(s);
        assertArrayEquals(s, dst.mig.saveState(), "what was loaded saves the same");
        // The driver sees the loaded common configuration.
        assertEquals(0x0F, dst.driver.status());
        dst.driver.common(0x16, 2, 0);
        assertEquals(64, dst.driver.common(0x18, 2));
        assertEquals(BASE + VirtioDriver.USED, dst.driver.common(0x30, 8));
    }

    /** Loads {@code bad} into a fresh stopped device: refused with a message containing {@code expected}, device unchanged. */
    void refused(byte[] bad, String expected, Options options, Path d) {
        Served dst = serve(d, options);
        dst.mig.stop();
        byte[] before = dst.mig.saveState();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dst.mig.loadState(bad));
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertArrayEquals(before, dst.mig.saveState(), "a refused state leaves the device as it was");
    }

    void refused(byte[] good, Consumer<ByteBuffer> edit, String expected) {
        byte[] bad = good.clone();
        edit.accept(le(bad));
        refused(bad, expected, Options.DEFAULT, disk);
    }

    @Test
    void everyTruncationIsRefused() {
        byte[] s = sourceState();
        Served dst = serve(disk, Options.DEFAULT);
        dst.mig.stop();
        byte[] before = dst.mig.saveState();
        for (int n = 0; n < s.length; n++) {
            byte[] cut = Arrays.copyOf(s, n);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dst.mig.loadState(cut), "length " + n);
            assertTrue(e.getMessage().contains("truncated"), n + ": " + e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> dst.mig.loadState(Arrays.copyOf(s, s.length + 1)), "a byte too many");
        assertArrayEquals(before, dst.mig.saveState());
    }

    @Test
    void badMagicVersionAndCountsAreRefused() {
        byte[] s = sourceState();
        refused(s, b -> b.putInt(0, 0x12345678), "magic");
        refused(s, b -> b.putShort(4, (short) 2), "version 2");
        refused(s, b -> b.putShort(6, (short) 2), "2 queues");
        refused(s, b -> b.putInt(12, STATE_SIZE + 1), "the header says");
    }

    @Test
    void queueFieldsOutOfRangeAreRefused() {
        byte[] s = sourceState();
        refused(s, b -> b.putShort(QUEUE0, (short) 512), "queue_size 512 is not a power of two up to 256");
        refused(s, b -> b.putShort(QUEUE0, (short) 48), "queue_size 48");
        refused(s, b -> b.putShort(QUEUE0 + 2, (short) 7), "queue_msix_vector 7");
        refused(s, b -> b.putShort(QUEUE0 + 32, (short) 4), "a request taken and not returned");
        refused(s, b -> b.put(QUEUE0 + 4, (byte) 2), "queue_enable 2");
        refused(s, b -> b.put(16, (byte) 0x1F), "reserved bits");
        refused(s, b -> b.putLong(32, VirtioBlkTest.FEATURES | 1L << 40), "not all offered");
    }

    @Test
    void anotherDiskIsRefused() throws Exception {
        byte[] s = sourceState();
        Path bigger = dir.resolve("bigger.img");
        Files.write(bigger, new byte[(SECTORS + 8) * SECTOR_SIZE]);
        refused(s, "the source's disk has 64 sectors", Options.DEFAULT, bigger);
        refused(s, "features", new Options(true, Options.DEFAULT.serial(), false), disk);
        refused(s, "serial", new Options(false, "another-serial", false), disk);
        byte[] ro = s.clone();
        ro[ro.length - STATE_SIZE + 8] = 1;
        refused(ro, "read-only", Options.DEFAULT, disk);
    }

    /** STOP remembers doorbells without serving them; RUNNING serves them. */
    @Test
    void doorbellsWhileStoppedAreServedOnResume() {
        Served a = serve(disk, Options.DEFAULT);
        a.driver.init(VirtioBlkTest.FEATURES, 64, 0, 1);
        assertEquals(VIRTIO_BLK_S_OK, a.write(0, (byte) 1));
        a.mig.stop();
        assertEquals((byte) 0xFF, a.write(1, (byte) 2), "not served while stopped");
        assertEquals(1, a.driver.usedIdx());
        assertEquals(1, le(a.mig.saveState()).get(QUEUE0 + 5), "notify_pending saved");
        a.mig.resume();
        assertEquals(2, a.driver.usedIdx(), "served on resume");
        assertEquals(VIRTIO_BLK_S_OK, a.driver.get(FREE + 0x1000, 1)[0]);
    }
}
