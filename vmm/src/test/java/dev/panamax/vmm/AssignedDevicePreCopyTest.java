package dev.panamax.vmm;

import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * PRE_COPY at a live migration's start ({@link AssignedDeviceSnapshot#startPreCopy}): a vfio-user device that offers it
 * (a real {@link dev.panamax.vfiouser.server.VfioUserServer} in this process) gives its first data while it runs, and
 * {@link AssignedDeviceSnapshot#stopAndSave} takes it on from PRE_COPY to STOP_COPY, its record holding both parts in
 * order; a device without PRE_COPY (the real virtio-blk server) takes the usual path beside it; a migration that ends
 * first ({@link AssignedDeviceSnapshot#endPreCopy}) leaves the device RUNNING without having stopped it.
 */
@Timeout(60)
class AssignedDevicePreCopyTest {
    static final List<SnapshotManifest.Device> SAVED = List.of(new SnapshotManifest.Device("blk0", "vfio-user-pci", "00:01.0"),
            new SnapshotManifest.Device("pre0", "vfio-user-pci", "00:02.0"));

    @TempDir
    Path dir;
    final AssignedDeviceSnapshotTest blk = new AssignedDeviceSnapshotTest();

    @BeforeEach
    void share() {
        blk.dir = dir;
    }

    @AfterEach
    void closeAll() throws Exception {
        blk.closeAll();
    }

    /** A device whose state is a large early part (readable while it runs) and a small late one. */
    static final class PreCopyDevice implements MigratableDevice, RegionHandler {
        final byte[] early = new byte[10_000];
        final byte[] late = "the late part".getBytes();
        final List<String> calls = new ArrayList<>();

        PreCopyDevice() {
            for (int i = 0; i < early.length; i++) {
                early[i] = (byte) (i * 31);
            }
        }

        public void read(long offset, byte[] into) { }
        public void write(long offset, byte[] data) { }
        public synchronized void stop() { calls.add("stop"); }
        public synchronized void resume() { calls.add("resume"); }
        public synchronized byte[] saveState() { calls.add("save"); return late; }
        public void loadState(byte[] state) { }
        public boolean offersPreCopy() { return true; }
        public synchronized byte[] preCopyState() { calls.add("pre"); return early; }
    }

    record Machine(AssignedPciDevice good, AssignedPciDevice pre, PreCopyDevice device, AssignedDeviceSnapshot snap) {
    }

    Machine machine() throws Exception {
        AssignedPciDevice good = blk.serve("blk0", new AssignedDeviceSnapshotTest.Routes());
        AssignedDeviceSnapshotTest.program(good);
        PreCopyDevice d = new PreCopyDevice();
        AssignedPciDevice pre = AssignedDeviceSnapshotFailureTest.serve(dir, blk.open, "pre0", d, d, Duration.ofSeconds(10));
        AssignedDeviceSnapshot snap = new AssignedDeviceSnapshot(SAVED, List.of(good, pre));
        snap.checkSavable("snapshot");
        return new Machine(good, pre, d, snap);
    }

    static VfioDeviceMigState state(AssignedPciDevice d) {
        return AssignedDeviceSnapshotTest.client(d).migration().state();
    }

    @Test
    void theEarlyPartIsReadWhileTheDeviceRunsAndTheRecordHoldsBothInOrder() throws Exception {
        Machine m = machine();
        m.snap.startPreCopy();
        assertEquals(VfioDeviceMigState.PRE_COPY, state(m.pre));
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good), "no PRE_COPY offered: the virtio-blk device runs on");
        assertEquals(List.of("pre"), m.device.calls, "read while running: not stopped");

        Map<String, byte[]> records = m.snap.stopAndSave();
        assertEquals(List.of("pre", "stop", "save"), m.device.calls);
        assertEquals(VfioDeviceMigState.STOP_COPY, state(m.pre));
        assertEquals(VfioDeviceMigState.STOP_COPY, state(m.good));
        byte[] want = Arrays.copyOf(m.device.early, m.device.early.length + m.device.late.length);
        System.arraycopy(m.device.late, 0, want, m.device.early.length, m.device.late.length);
        assertArrayEquals(want, AssignedDeviceSnapshot.decode("pre0", records.get("pre0")).data());
        assertEquals(2, records.size());

        assertNull(m.snap.resumeAll());
        assertEquals(VfioDeviceMigState.RUNNING, state(m.pre));
        assertEquals(VfioDeviceMigState.RUNNING, state(m.good));
        assertEquals(List.of("pre", "stop", "save", "resume"), m.device.calls);
    }

    @Test
    void aMigrationThatEndsFirstLeavesTheDeviceRunningAndTheNextSnapshotTakesTheUsualPath() throws Exception {
        Machine m = machine();
        m.snap.startPreCopy();
        m.snap.endPreCopy();
        assertEquals(VfioDeviceMigState.RUNNING, state(m.pre));
        assertEquals(List.of("pre"), m.device.calls, "PRE_COPY -> RUNNING neither stops nor resumes");

        Map<String, byte[]> records = m.snap.stopAndSave();
        assertArrayEquals(m.device.late, AssignedDeviceSnapshot.decode("pre0", records.get("pre0")).data());
        assertNull(m.snap.resumeAll());
        assertEquals(List.of("pre", "stop", "save", "resume"), m.device.calls);
        assertEquals(VfioDeviceMigState.RUNNING, state(m.pre));
    }
}
