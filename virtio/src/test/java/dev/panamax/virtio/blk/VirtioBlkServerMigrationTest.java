package dev.panamax.virtio.blk;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.client.VfioUserMigration;
import dev.panamax.vfiouser.server.VfioUserServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.panamax.virtio.blk.VirtioBlk.*;
import static dev.panamax.virtio.blk.VirtioDriver.Desc;
import static dev.panamax.virtio.blk.VirtioDriver.FREE;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A virtio-blk device moves from one {@link VirtioBlkServer} to another over real sockets, with the vfio-user client
 * library's migration v2 ({@link VfioUserClient#migration()}): both servers serve the same disk file, guest RAM is one
 * memfd DMA-mapped into both. The driver's queue goes on on the destination from where it stopped: the used ring
 * continues, a doorbell rung while the source was stopped is served once by the destination, and no request the
 * source completed is served again.
 */
class VirtioBlkServerMigrationTest {
    static final long BASE = 0x1_0000_0000L;
    static final int MEMORY = 1 << 20;
    static final int SECTORS = 256;

    @TempDir
    Path dir;
    final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    /** Starts a server on {@code name}.sock for {@code disk}; @return a client connected to it with guest RAM mapped. */
    VfioUserClient serve(String name, Path disk, MemFd guest) throws Exception {
        Path socket = dir.resolve(name + ".sock");
        VirtioBlkServer server = new VirtioBlkServer(socket, disk, Options.DEFAULT, -1, VfioUserServer.Deadlines.DEFAULT);
        Thread loop = Thread.ofPlatform().name("virtio-blk-" + name).start(server::run);
        open.add(() -> {
            server.close();
            loop.join(5000);
        });
        VfioUserClient c = VfioUserClient.connect(socket, VfioUserClient.Options.defaults().withPostedWrites(false));
        open.add(c);
        c.dma().dmaMap(BASE, new RamRegion("guest", BASE, MEMORY, guest.mapping(), guest.fd(), 0), DmaBackend.READ | DmaBackend.WRITE);
        return c;
    }

    static VirtioDriver.RegionIo io(VfioUserClient c) {
        return new VirtioDriver.RegionIo() {
            @Override
            public byte[] read(long region, long offset, int count) {
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment m = a.allocate(count);
                    c.regionRead((int) region, offset, m);
                    return m.toArray(JAVA_BYTE);
                }
            }

            @Override
            public void write(long region, long offset, byte[] data) {
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment m = a.allocate(data.length);
                    MemorySegment.copy(data, 0, m, JAVA_BYTE, 0, data.length);
                    c.regionWrite((int) region, offset, m);
                }
            }
        };
    }

    /** Request {@code n}'s buffers: header, one sector of data and status at their own offsets. */
    static long slot(int n) {
        return FREE + 0x400L * n;
    }

    /** Submits an OUT of one sector filled with {@code fill} at {@code sector}; rings the doorbell. */
    static void write(VirtioDriver d, int n, long sector, byte fill) {
        d.header(slot(n), VIRTIO_BLK_T_OUT, sector);
        byte[] data = new byte[SECTOR_SIZE];
        Arrays.fill(data, fill);
        d.put(slot(n) + 0x10, data);
        d.put(slot(n) + 0x210, new byte[]{(byte) 0xFF});
        d.submit(new Desc(BASE + slot(n), REQUEST_HEADER_SIZE, false), new Desc(BASE + slot(n) + 0x10, SECTOR_SIZE, false),
                new Desc(BASE + slot(n) + 0x210, 1, true));
        d.kick();
    }

    static int status(VirtioDriver d, int n) {
        return d.get(slot(n) + 0x210, 1)[0];
    }

    static byte[] sector(Path disk, long sector) throws Exception {
        return Arrays.copyOfRange(Files.readAllBytes(disk), (int) sector * SECTOR_SIZE, (int) (sector + 1) * SECTOR_SIZE);
    }

    static byte[] filled(byte fill) {
        byte[] b = new byte[SECTOR_SIZE];
        Arrays.fill(b, fill);
        return b;
    }

    @Test
    void theQueueContinuesOnTheDestination() throws Exception {
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[SECTORS * SECTOR_SIZE]);
        MemFd guest = new MemFd("guest", MEMORY);
        open.add(guest);

        VfioUserClient src = serve("src", disk, guest);
        VirtioDriver d = new VirtioDriver(io(src), guest.mapping(), BASE);
        d.discover();
        d.init(VirtioBlkTest.FEATURES, 64, 0, 1);
        for (int n = 0; n < 3; n++) {
            write(d, n, 10 + n, (byte) (0x10 + n));
            assertEquals(VIRTIO_BLK_S_OK, status(d, n));
        }
        assertEquals(3, d.usedIdx());

        VfioUserMigration m1 = src.migration();
        assertEquals(1L, m1.probe().orElseThrow(), "VFIO_MIGRATION_STOP_COPY");
        m1.setState(VfioDeviceMigState.STOP);
        // Rung while stopped: remembered, not served.
        write(d, 3, 13, (byte) 0x13);
        assertEquals(3, d.usedIdx(), "a stopped device serves no doorbell");
        assertEquals((byte) 0xFF, status(d, 3));
        m1.setState(VfioDeviceMigState.STOP_COPY);
        byte[] state = m1.readAll(1 << 20);
        assertTrue(state.length > 0);

        // Something else writes sector 10 now: were the source's first request served again, it would come back.
        byte[] image = Files.readAllBytes(disk);
        Arrays.fill(image, 10 * SECTOR_SIZE, 11 * SECTOR_SIZE, (byte) 0x77);
        Files.write(disk, image);

        VfioUserClient dst = serve("dst", disk, guest);
        VfioUserMigration m2 = dst.migration();
        m2.setState(VfioDeviceMigState.RESUMING);
        m2.writeAll(state);
        d.io = io(dst);
        m2.setState(VfioDeviceMigState.RUNNING);
        assertEquals(VfioDeviceMigState.RUNNING, m2.state());
        assertEquals(4, d.usedIdx(), "the doorbell rung while stopped is served once, by the destination");
        assertEquals(VIRTIO_BLK_S_OK, status(d, 3));

        for (int n = 4; n < 6; n++) {
            write(d, n, 10 + n, (byte) (0x10 + n));
            assertEquals(VIRTIO_BLK_S_OK, status(d, n));
        }
        assertEquals(6, d.usedIdx(), "the used ring goes on from the source's index");
        for (int n = 0; n < 6; n++) {
            assertEquals(3L * n, d.used(n)[0], "used element " + n + ": request " + n + "'s head (3 descriptors each from 0)");
        }
        assertArrayEquals(filled((byte) 0x77), sector(disk, 10), "the source's first request was not served again");
        for (int n = 1; n < 6; n++) {
            assertArrayEquals(filled((byte) (0x10 + n)), sector(disk, 10 + n), "sector " + (10 + n));
        }
        assertArrayEquals(new byte[SECTOR_SIZE], sector(disk, 16));
    }
}
