package dev.panamax.vmm;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserRegion;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vmm.api.VmControl.ControlException;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Snapshots that fail at a vfio-user server (issue 17, "Bad input"): a server that refuses a state transition, one
 * that stalls in STOP_COPY past the client's request timeout, one that sends more migration data than
 * {@link AssignedDeviceSnapshot#MAX_DATA}, and one without migration at all. Each machine has a good device first
 * (a real {@link dev.panamax.virtio.blk.VirtioBlkServer}, stopped and saved before the bad one fails) and the bad one
 * second, a real {@link VfioUserServer} over a UNIX socket in this process. The failure is one
 * {@link ControlException} line naming the bad device and the cause; {@link AssignedDeviceSnapshot#resumeAll} then
 * runs every stopped device whose server still answers again, and a stalled server's device is broken, not waited on.
 */
@Timeout(60)
class AssignedDeviceSnapshotFailureTest {
    static final List<SnapshotManifest.Device> SAVED = List.of(new SnapshotManifest.Device("blk0", "vfio-user-pci", "00:01.0"),
            new SnapshotManifest.Device("bad0", "vfio-user-pci", "00:02.0"));
    static final String BAD = "device bad0 (vfio-user-pci at 00:02.0)";

    @TempDir
    Path dir;
    /** Serves the good device (and owns what it opened). */
    final AssignedDeviceSnapshotTest blk = new AssignedDeviceSnapshotTest();

    @BeforeEach
    void share() {
        blk.dir = dir;
    }

    @AfterEach
    void closeAll() throws Exception {
        blk.closeAll();
    }

    /** How the bad device's server misbehaves. */
    enum Fault { REFUSE_STOP, REFUSE_STOP_COPY, STALL, TOO_MUCH }

    /** A device with a trapped BAR0 whose migration callbacks fail as {@code fault} says. */
    static final class FaultyDevice implements MigratableDevice, RegionHandler {
        final Fault fault;
        final CountDownLatch release = new CountDownLatch(1);
        volatile boolean stalled;

        FaultyDevice(Fault fault) {
            this.fault = fault;
        }

        @Override
        public void read(long offset, byte[] into) {
        }

        @Override
        public void write(long offset, byte[] data) {
        }

        @Override
        public void stop() {
            if (fault == Fault.REFUSE_STOP) {
                throw new VfioUserProtocolException(Errno.EINVAL, "this device will not stop");
            }
        }

        @Override
        public void resume() {
        }

        @Override
        public byte[] saveState() {
            switch (fault) {
                case REFUSE_STOP_COPY -> throw new VfioUserProtocolException(Errno.EINVAL, "this device will not be copied");
                case STALL -> {
                    stalled = true;
                    try {
                        release.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                case TOO_MUCH -> {
                    return new byte[AssignedDeviceSnapshot.MAX_DATA + 1];
                }
                default -> {
                }
            }
            return new byte[16];
        }

        @Override
        public void loadState(byte[] state) {
        }

        @Override
        public long maxStateSize() {
            return AssignedDeviceSnapshot.MAX_DATA + 4096L;
        }
    }

    /** Serves {@code d} (with migration when {@code migratable}) and attaches a client with a 500 ms request timeout. */
    AssignedPciDevice serve(FaultyDevice d, boolean migratable) throws Exception {
        AssignedPciDevice a = serve(dir, blk.open, "bad0", d, migratable ? d : null, Duration.ofMillis(500));
        blk.open.add(d.release::countDown); // closed first: a stalled request thread ends before its server closes
        return a;
    }

    /**
     * Serves a device named {@code name} with a trapped 4 KiB BAR0 ({@code bar}) and, unless null, {@code migration},
     * on {@code dir/name.sock}, and attaches a client whose requests wait at most {@code timeout}, as a machine does.
     * What it opens goes into {@code open}.
     */
    static AssignedPciDevice serve(Path dir, List<AutoCloseable> open, String name, RegionHandler bar,
                                   MigratableDevice migration, Duration timeout) throws Exception {
        VfioUserDevice.Builder b = VfioUserDevice.builder(VfioUserDevice.pciFunction(name, 0x1af4, 0x10ff, 0xff0000, 0))
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), 4096, bar));
        if (migration != null) {
            b.migration(migration);
        }
        VfioUserDevice device = b.build();
        Path socket = dir.resolve(name + ".sock");
        CompletableFuture<VfioUserServer> accepted = CompletableFuture.supplyAsync(() -> {
            VfioUserServer s = VfioUserServer.accept(socket, device, Duration.ofSeconds(10));
            s.start();
            return s;
        });
        VfioUserClient.Options options = VfioUserClient.Options.defaults().withPostedWrites(false).withRequestTimeout(timeout);
        VfioUserClient c;
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (true) {
            try {
                c = VfioUserClient.connect(socket, options);
                break;
            } catch (LinuxException e) { // the socket file appears at bind, a moment before listen
                if (System.nanoTime() - deadline > 0) {
                    throw e;
                }
                Thread.sleep(1);
            }
        }
        VfioUserServer server = accepted.get();
        open.add(server);
        AssignedPciDevice a = AssignedPciDevice.attach(c, new PciBus(gsi -> level -> { }), new AddressSpace(),
                new AssignedDeviceSnapshotTest.Routes(), AssignedDeviceSnapshotTest.NO_TRAPS,
                new PciBarAllocator(0xC000_0000L, 0xE000_0000L, 1L << 36, 1L << 40));
        open.add(a);
        return a;
    }

    record Machine(AssignedPciDevice good, AssignedPciDevice bad, FaultyDevice faulty, AssignedDeviceSnapshot snap) {
    }

    Machine machine(Fault fault) throws Exception {
        AssignedPciDevice good = blk.serve("blk0", new AssignedDeviceSnapshotTest.Routes());
        AssignedDeviceSnapshotTest.program(good);
        FaultyDevice faulty = new FaultyDevice(fault);
        AssignedPciDevice bad = serve(faulty, true);
        AssignedDeviceSnapshot snap = new AssignedDeviceSnapshot(SAVED, List.of(good, bad));
        snap.checkSavable("snapshot");
        return new Machine(good, bad, faulty, snap);
    }

    /** The snapshot fails with one line naming bad0 and containing {@code cause}. */
    static String failsNaming(AssignedDeviceSnapshot snap, String... cause) {
        ControlException e = assertThrows(ControlException.class, snap::stopAndSave);
        String m = e.getMessage();
        assertFalse(m.contains("\n"), "one line: " + m);
        assertTrue(m.startsWith("snapshot failed: " + BAD + ": ") && m.endsWith("; the VM runs on"), m);
        for (String c : cause) {
            assertTrue(m.contains(c), "names " + c + ": " + m);
        }
        return m;
    }

    static VfioDeviceMigState state(AssignedPciDevice d) {
        return AssignedDeviceSnapshotTest.client(d).migration().state();
    }

    @Test
    void aServerRefusingStopCopyFailsTheSnapshotAndBothDevicesRunAgain() throws Exception {
        Machine m = machine(Fault.REFUSE_STOP_COPY);
        failsNaming(m.snap(), "SET MIG_DEVICE_STATE STOP_COPY", "EINVAL");
        assertEquals(VfioDeviceMigState.STOP_COPY, state(m.good()), "the good device was saved first");
        assertEquals(VfioDeviceMigState.STOP, state(m.bad()), "a refused arc leaves the state as it was");
        assertNull(m.snap().resumeAll());
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good()));
        assertEquals(VfioDeviceMigState.RUNNING, state(m.bad()));
    }

    @Test
    void aServerRefusingStopFailsTheSnapshotAndTheGoodDeviceRunsAgain() throws Exception {
        Machine m = machine(Fault.REFUSE_STOP);
        failsNaming(m.snap(), "SET MIG_DEVICE_STATE STOP", "EINVAL");
        assertEquals(VfioDeviceMigState.RUNNING, state(m.bad()), "never stopped");
        assertNull(m.snap().resumeAll());
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good()));
        assertEquals(VfioDeviceMigState.RUNNING, state(m.bad()));
    }

    @Test
    void aServerStallingInStopCopyBreaksItsDeviceWithinTheTimeout() throws Exception {
        Machine m = machine(Fault.STALL);
        long t0 = System.nanoTime();
        failsNaming(m.snap(), "STOP_COPY");
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(m.faulty().stalled, "the server was in saveState");
        assertTrue(ms < 5_000, "bounded by the 500 ms request timeout, took " + ms + " ms");
        VfioUserClient bad = AssignedDeviceSnapshotTest.client(m.bad());
        assertTrue(bad.isBroken(), "the stalled device is broken");
        t0 = System.nanoTime();
        String failure = m.snap().resumeAll();
        assertTrue(System.nanoTime() - t0 < 2_000_000_000L, "a broken device is not waited on");
        assertTrue(failure != null && failure.contains("bad0.sock") && failure.contains("did not return to RUNNING"), failure);
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good()), "the good device runs again");
    }

    @Test
    void aServerSendingMoreThanTheLimitBreaksItsDeviceAndTheGoodOneRunsAgain() throws Exception {
        Machine m = machine(Fault.TOO_MUCH);
        failsNaming(m.snap(), "MIG_DATA_READ", "more than " + AssignedDeviceSnapshot.MAX_DATA + " bytes");
        assertTrue(AssignedDeviceSnapshotTest.client(m.bad()).isBroken());
        String failure = m.snap().resumeAll();
        assertTrue(failure != null && failure.contains("bad0.sock"), failure);
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good()));
    }

    @Test
    void aServerWithoutMigrationIsRefusedBeforeAnythingStops() throws Exception {
        AssignedPciDevice good = blk.serve("blk0", new AssignedDeviceSnapshotTest.Routes());
        AssignedPciDevice bad = serve(new FaultyDevice(Fault.REFUSE_STOP), false);
        AssignedDeviceSnapshot snap = new AssignedDeviceSnapshot(SAVED, List.of(good, bad));
        ControlException e = assertThrows(ControlException.class, () -> snap.checkSavable("snapshot"));
        assertEquals("snapshot refused: " + BAD + " cannot be saved: its vfio-user server does not offer migration "
                + "(VFIO_DEVICE_FEATURE_MIGRATION); the VM runs on", e.getMessage());
        // A migration is refused in the same words, under its own name.
        assertTrue(assertThrows(ControlException.class, () -> snap.checkSavable("migrate")).getMessage()
                .startsWith("migrate refused: " + BAD + " cannot be saved"));
        assertEquals(VfioDeviceMigState.RUNNING, state(good), "nothing stopped");
        assertNull(snap.resumeAll());
    }
}
