package dev.panamax.vmm;

import dev.panamax.core.state.StateException;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.client.VfioUserClientException;
import dev.panamax.vfiouser.protocol.VfioDeviceMigState;
import dev.panamax.vfiouser.server.MigratableDevice;
import dev.panamax.vmm.api.VmControl.ControlException;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The machine's assigned devices in a snapshot: each vfio-user device's own state moves by migration v2
 * ({@code <linux/vfio.h>}'s {@code enum vfio_device_mig_state} over vfio-user, {@link VfioUserClient#migration()}),
 * the client's side of it ({@link AssignedPciDevice#saveState}) with it. Both go into {@code MachineState.devices}
 * under the device's {@code --device} name as one record, tag {@value #TAG}, version {@value #VERSION}:
 *
 * <pre>
 *   u8    kind: 1 = vfio-user migration v2
 *   bytes the device's migration data (le32 length, at most {@link #MAX_DATA} bytes), as MIG_DATA_READ gave it
 *   bytes the client's side (le32 length, at most {@link #MAX_CLIENT} bytes): {@link AssignedPciDevice#saveState}
 * </pre>
 *
 * <p>Saving, with the vCPUs paused ({@link #stopAndSave}): every device is probed first (a kernel VFIO device, or a
 * vfio-user server without migration, refuses the whole snapshot with a line naming it), then each goes RUNNING →
 * STOP → STOP_COPY, its data is read (bounded), and {@link #resumeAll} takes every stopped one back to RUNNING once
 * the snapshot is written or failed. Restoring, in a new process whose devices were attached by the command line
 * (fresh servers): {@link #restore} walks each to RESUMING, writes its data, to STOP (the server loads it there), and
 * restores the client's side (BARs, interrupts: the device may be configured while stopped); {@link #startAll} then
 * takes them to RUNNING once the vCPUs and the interrupt controllers have their state, so that no interrupt the
 * device raises is lost under {@code KVM_SET_LAPIC}. Matching is by position: the snapshot's i-th device gives its
 * state to the command line's i-th (kinds and PCI addresses already checked to match; names may differ).
 */
final class AssignedDeviceSnapshot {
    private static final Logger log = LoggerFactory.getLogger(AssignedDeviceSnapshot.class);
    static final String TAG = "VUMG";
    static final int VERSION = 1;
    static final int KIND_VFIO_USER = 1;
    /** The most migration data taken from one device: the server library's default maximum state. */
    static final int MAX_DATA = (int) MigratableDevice.DEFAULT_MAX_STATE_SIZE;
    /** The most bytes of client state: a 4 KiB config space and 2048 MSI-X entries, with room. */
    static final int MAX_CLIENT = 64 << 10;

    /** One attached device: what the manifest says of it, and the device. */
    record Entry(SnapshotManifest.Device described, AssignedPciDevice device) {
        String name() {
            return described.name();
        }

        VfioDeviceIo io() {
            return device.function().device();
        }
    }

    private final List<Entry> entries;
    /** The devices taken out of RUNNING by {@link #stopAndSave} or {@link #restore}, in order. Guarded by this. */
    private final List<VfioUserClient> stopped = new ArrayList<>();

    AssignedDeviceSnapshot(List<SnapshotManifest.Device> described, List<AssignedPciDevice> devices) {
        if (described.size() != devices.size()) {
            throw new IllegalArgumentException(described.size() + " descriptions for " + devices.size() + " devices");
        }
        List<Entry> list = new ArrayList<>();
        for (int i = 0; i < devices.size(); i++) {
            list.add(new Entry(described.get(i), devices.get(i)));
        }
        this.entries = List.copyOf(list);
    }

    /** @return a machine without assigned devices */
    static AssignedDeviceSnapshot none() {
        return new AssignedDeviceSnapshot(List.of(), List.of());
    }

    private static String label(Entry e) {
        return "device " + e.name() + " (" + e.described().kind() + " at " + e.described().pciAddress() + ")";
    }

    /**
     * Checks that every device can be saved: a vfio-user device whose server offers migration v2 with STOP_COPY.
     *
     * @throws ControlException naming the first device that cannot; nothing was changed
     */
    void checkSavable() {
        for (Entry e : entries) {
            if (!(e.io() instanceof VfioUserClient c)) {
                throw new ControlException("snapshot refused: " + label(e) + " cannot be saved: kernel VFIO migration "
                        + "is not supported by this Panamax; the VM runs on");
            }
            try {
                if (c.migration().probe().isEmpty()) {
                    throw new ControlException("snapshot refused: " + label(e) + " cannot be saved: its vfio-user server "
                            + "does not offer migration (VFIO_DEVICE_FEATURE_MIGRATION); the VM runs on");
                }
            } catch (VfioUserClientException x) {
                throw new ControlException("snapshot refused: " + label(e) + ": migration probe failed: " + x.getMessage()
                        + "; the VM runs on", x);
            }
        }
    }

    /**
     * With the vCPUs paused: stops every device and reads its state. Whatever happens, call {@link #resumeAll}
     * afterwards.
     *
     * @return each device's record, by its name
     * @throws ControlException naming the device whose server refused a transition, failed or stalled
     */
    synchronized Map<String, byte[]> stopAndSave() {
        Map<String, byte[]> states = new LinkedHashMap<>();
        for (Entry e : entries) {
            VfioUserClient c = (VfioUserClient) e.io();
            try {
                c.migration().setState(VfioDeviceMigState.STOP);
                stopped.add(c);
                c.migration().setState(VfioDeviceMigState.STOP_COPY);
                byte[] data = c.migration().readAll(MAX_DATA);
                byte[] client = e.device().saveState();
                states.put(e.name(), encode(data, client));
                log.info("{}: {} bytes of device state, {} bytes of client state", e.name(), data.length, client.length);
            } catch (RuntimeException x) {
                throw new ControlException("snapshot failed: " + label(e) + ": " + x.getMessage() + "; the VM runs on", x);
            }
        }
        return states;
    }

    /**
     * Takes every device {@link #stopAndSave} or {@link #restore} stopped back to RUNNING (from STOP or STOP_COPY).
     *
     * @return null, or the first failure as one line (every device is tried)
     */
    synchronized String resumeAll() {
        String failure = null;
        for (VfioUserClient c : stopped) {
            try {
                c.migration().setState(VfioDeviceMigState.RUNNING);
            } catch (RuntimeException x) {
                log.error("{}: back to RUNNING failed: {}", c.name(), x.getMessage());
                if (failure == null) {
                    failure = c.name() + " did not return to RUNNING: " + x.getMessage();
                }
            }
        }
        stopped.clear();
        return failure;
    }

    /** @return the record of {@link #TAG} for one device */
    static byte[] encode(byte[] data, byte[] client) {
        return new StateWriter(TAG, VERSION).u8(KIND_VFIO_USER).bytes(data).bytes(client).toByteArray();
    }

    /** A device's record, parsed. */
    record Saved(byte[] data, byte[] client) {
    }

    /** @throws StateException if {@code record} is not one {@link #encode} can have written */
    static Saved decode(String name, byte[] record) {
        var r = new StateReader(name, record, TAG, VERSION);
        r.check("kind", r.u8(), KIND_VFIO_USER, KIND_VFIO_USER);
        byte[] data = r.bytes("migration data", MAX_DATA);
        byte[] client = r.bytes("client state", MAX_CLIENT);
        r.end();
        return new Saved(data, client);
    }

    /**
     * @param saved the snapshot's devices
     * @return {@code states} without the assigned devices' records: the device models' states
     */
    static Map<String, byte[]> modelStates(Map<String, byte[]> states, List<SnapshotManifest.Device> saved) {
        Set<String> names = new HashSet<>();
        saved.forEach(d -> names.add(d.name()));
        Map<String, byte[]> models = new LinkedHashMap<>(states);
        models.keySet().removeAll(names);
        return models;
    }

    /**
     * Restores every device from the snapshot, before any vCPU exists: RESUMING, the data written, STOP (the server
     * loads it), then the client's side. {@link #startAll} runs them.
     *
     * @param saved  the snapshot's devices, in order (already checked to match these in kind and PCI address)
     * @param states the snapshot's device states, by name
     * @throws ConfigException ("restore") naming the device whose record is missing or damaged, or whose server refused
     */
    synchronized void restore(List<SnapshotManifest.Device> saved, Map<String, byte[]> states) {
        if (saved.size() != entries.size()) {
            throw new ConfigException("restore", "{setting}: the snapshot has " + saved.size() + " devices, this machine "
                    + entries.size());
        }
        List<Saved> records = new ArrayList<>();
        for (int i = 0; i < entries.size(); i++) {
            String name = saved.get(i).name();
            byte[] record = states.get(name);
            if (record == null) {
                throw new ConfigException("restore", "{setting}: the snapshot holds no state for device " + name);
            }
            if (!(entries.get(i).io() instanceof VfioUserClient)) {
                throw new ConfigException("restore", "{setting}: " + label(entries.get(i)) + " is no vfio-user device");
            }
            try {
                records.add(decode(name, record));
            } catch (StateException x) {
                throw new ConfigException("restore", "{setting}: " + x.getMessage(), x);
            }
        }
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            VfioUserClient c = (VfioUserClient) e.io();
            try {
                if (c.migration().probe().isEmpty()) {
                    throw new ConfigException("restore", "{setting}: " + label(e) + ": its vfio-user server does not offer migration");
                }
                c.migration().setState(VfioDeviceMigState.RESUMING);
                stopped.add(c);
                c.migration().writeAll(records.get(i).data());
                c.migration().setState(VfioDeviceMigState.STOP);
                e.device().restoreState(records.get(i).client());
                log.info("{}: restored ({} bytes of device state)", e.name(), records.get(i).data().length);
            } catch (ConfigException x) {
                throw x;
            } catch (RuntimeException x) {
                throw new ConfigException("restore", "{setting}: " + label(e) + ": " + x.getMessage(), x);
            }
        }
    }

    /**
     * Runs the devices {@link #restore} prepared (STOP → RUNNING), once the vCPUs and the VM have their state.
     *
     * @throws ConfigException ("restore") naming the device that did not start
     */
    void startAll() {
        String failure = resumeAll();
        if (failure != null) {
            throw new ConfigException("restore", "{setting}: " + failure);
        }
    }
}
