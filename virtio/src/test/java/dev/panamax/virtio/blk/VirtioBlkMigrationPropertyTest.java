package dev.panamax.virtio.blk;

import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.virtio.VirtioPciTransport;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * {@link MigratableDevice#loadState} of virtio-blk on the virtio PCI transport against arbitrary bytes, and against a
 * valid state with bytes changed or cut: it either takes the bytes or throws IllegalArgumentException (never another
 * exception), and after a refusal the device saves exactly what it saved before. The device is real (a disk file),
 * not served: migration state needs no client. Named *Test so that surefire runs it by default.
 */
class VirtioBlkMigrationPropertyTest {
    static Path disk;
    static VirtioBlk blk;
    static MigratableDevice mig;
    /** A valid state with the driver's work in it: features negotiated, queue 0 enabled with 5 requests done. */
    static byte[] good;

    @BeforeContainer
    static void device() throws Exception {
        disk = Files.createTempFile("virtio-blk-props", ".img");
        Files.write(disk, new byte[64 * VirtioBlk.SECTOR_SIZE]);
        blk = new VirtioBlk(disk, VirtioBlk.Options.DEFAULT);
        mig = new VirtioPciTransport(blk, false).vfioUserDevice().migration().orElseThrow();
        mig.stop();
        byte[] s = mig.saveState();
        ByteBuffer b = ByteBuffer.wrap(s).order(ByteOrder.LITTLE_ENDIAN);
        b.put(16, (byte) 0x0F).putShort(18, (short) 0).putLong(32, VirtioBlkTest.FEATURES);
        int q = VirtioBlkMigrationTest.QUEUE0;
        b.putShort(q, (short) 64).putShort(q + 2, (short) 1).put(q + 4, (byte) 1)
                .putLong(q + 8, 0x1_0000_0000L).putLong(q + 16, 0x1_0000_1000L).putLong(q + 24, 0x1_0000_2000L)
                .putShort(q + 32, (short) 5).putShort(q + 34, (short) 5);
        mig.loadState(s);
        good = mig.saveState();
        assertArrayEquals(s, good);
    }

    @AfterContainer
    static void close() throws Exception {
        blk.close();
        Files.deleteIfExists(disk);
    }

    /** Loads {@code state}: taken, or refused with IllegalArgumentException and the device unchanged. */
    static synchronized void loadOrRefuse(byte[] state) {
        mig.loadState(good);
        try {
            mig.loadState(state);
        } catch (IllegalArgumentException e) {
            assertNotNull(e.getMessage());
            assertArrayEquals(good, mig.saveState(), "a refused state changed the device");
        }
    }

    @Property
    void arbitraryBytes(@ForAll @Size(max = 400) byte[] state) {
        loadOrRefuse(state);
    }

    @Property
    void aValidStateWithBytesChanged(@ForAll("edits") List<int[]> edits) {
        byte[] s = good.clone();
        for (int[] e : edits) {
            s[e[0] % s.length] = (byte) e[1];
        }
        loadOrRefuse(s);
    }

    @Property
    void aValidStateCutOrGrown(@ForAll("lengths") int length) {
        loadOrRefuse(Arrays.copyOf(good, length));
    }

    @Provide
    Arbitrary<List<int[]>> edits() {
        return Arbitraries.integers().between(0, 10_000).flatMap(at -> Arbitraries.integers().between(0, 255).map(v -> new int[]{at, v}))
                .list().ofMinSize(1).ofMaxSize(4);
    }

    @Provide
    Arbitrary<Integer> lengths() {
        return Arbitraries.integers().between(0, 400);
    }
}
