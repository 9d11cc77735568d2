package dev.panamax.vmm;

import dev.panamax.core.state.StateException;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.KernelVfioDevice;
import dev.panamax.vfio.KernelVfioMigration;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfiouser.client.VfioUserClient;
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
 * The machine's assigned devices in a snapshot: each device's own state moves by migration v2
 * ({@code <linux/vfio.h>}'s {@code enum vfio_device_mig_state}; over vfio-user, {@link VfioUserClient#migration()}; for
 * a kernel VFIO device, {@code VFIO_DEVICE_FEATURE} and the data fd, {@link KernelVfioDevice#migration()}), the client's
 * side of it ({@link AssignedPciDevice#saveState}) with it. Both go into {@code MachineState.devices}
 * under the device's {@code --device} name as one record, tag {@value #TAG}, version {@value #VERSION}:
 *
 * <pre>
 *   u8    kind: 1 = vfio-user migration v2, 2 = kernel VFIO migration v2 (restore checks it matches the device)
 *   bytes the device's migration data (le32 length, at most {@link #MAX_DATA} bytes), as MIG_DATA_READ or the data fd gave it
 *   bytes the client's side (le32 length, at most {@link #MAX_CLIENT} bytes): {@link AssignedPciDevice#saveState}
 * </pre>
 *
 * <p>Saving, with the vCPUs paused ({@link #stopAndSave}): every device is probed first (a kernel VFIO device whose driver,
 * or a vfio-user server, offers no migration with STOP_COPY refuses the whole snapshot with a line naming it), then each goes RUNNING →
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
    static final int KIND_KERNEL_VFIO = 2;
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
    private final List<Migration> stopped = new ArrayList<>();
    /** By device name: the devices {@link #startPreCopy} took to PRE_COPY, and what was read from them. Guarded by this. */
    private final Map<String, Migration> inPreCopy = new LinkedHashMap<>();
    private final Map<String, byte[]> preCopied = new LinkedHashMap<>();

    /** Migration v2 of one device, whichever its transport. */
    interface Migration {
        String name();

        /** @return the record's kind byte */
        int kind();

        /** @return whether the device offers migration v2 with STOP_COPY */
        boolean offered();

        /** @return whether it also offers PRE_COPY (only vfio-user's is used: the kernel's data fd is read in STOP_COPY) */
        boolean offersPreCopy();

        void setState(VfioDeviceMigState target);

        byte[] readAll(long limitBytes);

        void writeAll(byte[] data);
    }

    /** @return the migration of {@code io}, or null for a device of another kind */
    static Migration migration(VfioDeviceIo io) {
        if (io instanceof VfioUserClient c) {
            return new Migration() {
                public String name() { return c.name(); }
                public int kind() { return KIND_VFIO_USER; }
                public boolean offered() { return c.migration().probe().isPresent(); }
                public boolean offersPreCopy() {
                    return (c.migration().probe().orElse(0) & VfioDeviceMigState.VFIO_MIGRATION_PRE_COPY) != 0;
                }
                public void setState(VfioDeviceMigState t) { c.migration().setState(t); }
                public byte[] readAll(long limit) { return c.migration().readAll(limit); }
                public void writeAll(byte[] data) { c.migration().writeAll(data); }
            };
        }
        if (io instanceof KernelVfioDevice k) {
            return new Migration() {
                public String name() { return k.name(); }
                public int kind() { return KIND_KERNEL_VFIO; }
                public boolean offered() { return k.migration().isPresent(); }
                public boolean offersPreCopy() { return false; }
                private KernelVfioMigration m() {
                    return k.migration().orElseThrow(() -> new IllegalStateException(k.name() + ": no migration"));
                }
                public void setState(VfioDeviceMigState t) { m().setState(t); }
                public byte[] readAll(long limit) { return m().readAll(limit); }
                public void writeAll(byte[] data) { m().writeAll(data); }
            };
        }
        return null;
    }

    private static String transport(int kind) {
        return kind == KIND_KERNEL_VFIO ? "its kernel VFIO driver" : "its vfio-user server";
    }

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

    /** @return the devices, in command-line order */
    List<Entry> entries() {
        return entries;
    }

    /** @return a machine without assigned devices */
    static AssignedDeviceSnapshot none() {
        return new AssignedDeviceSnapshot(List.of(), List.of());
    }

    private static String label(Entry e) {
        return "device " + e.name() + " (" + e.described().kind() + " at " + e.described().pciAddress() + ")";
    }

    /**
     * Checks that every device can be saved: a vfio-user device whose server, or a kernel VFIO device whose driver,
     * offers migration v2 with STOP_COPY.
     *
     * @param request what is asked ("snapshot", "migrate"): the refusal starts with it
     * @throws ControlException naming the first device that cannot; nothing was changed
     */
    void checkSavable(String request) {
        for (Entry e : entries) {
            Migration m = migration(e.io());
            if (m == null) {
                throw new ControlException(request + " refused: " + label(e) + " cannot be saved: it is neither a vfio-user "
                        + "nor a kernel VFIO device; the VM runs on");
            }
            boolean offered;
            try {
                offered = m.offered();
            } catch (RuntimeException x) {
                throw new ControlException(request + " refused: " + label(e) + ": migration probe failed: " + x.getMessage()
                        + "; the VM runs on", x);
            }
            if (!offered) {
                throw new ControlException(request + " refused: " + label(e) + " cannot be saved: " + transport(m.kind())
                        + " does not offer migration (VFIO_DEVICE_FEATURE_MIGRATION); the VM runs on");
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
            Migration m = inPreCopy.remove(e.name());
            byte[] early = preCopied.remove(e.name());
            try {
                byte[] data;
                if (m != null) { // PRE_COPY -> STOP_COPY stops it; its stream goes on after what was read while it ran
                    m.setState(VfioDeviceMigState.STOP_COPY);
                    byte[] rest = m.readAll(MAX_DATA - early.length);
                    data = java.util.Arrays.copyOf(early, early.length + rest.length);
                    System.arraycopy(rest, 0, data, early.length, rest.length);
                } else {
                    m = migration(e.io());
                    m.setState(VfioDeviceMigState.STOP);
                    stopped.add(m);
                    m.setState(VfioDeviceMigState.STOP_COPY);
                    data = m.readAll(MAX_DATA);
                }
                byte[] client = e.device().saveState();
                states.put(e.name(), encode(m.kind(), data, client));
                log.info("{}: {} bytes of device state, {} bytes of client state", e.name(), data.length, client.length);
            } catch (RuntimeException x) {
                throw new ControlException("snapshot failed: " + label(e) + ": " + x.getMessage() + "; the VM runs on", x);
            }
        }
        return states;
    }

    /**
     * Live migration's start, the vCPUs running: each device that offers PRE_COPY goes RUNNING -&gt; PRE_COPY and its
     * first migration data is read now, while it runs on, instead of with the VM paused; {@link #stopAndSave} takes it
     * on from there (PRE_COPY -&gt; STOP_COPY), {@link #endPreCopy} back to RUNNING if the migration ends before.
     *
     * @throws ControlException naming the device whose server refused, failed or stalled (call {@link #endPreCopy})
     */
    synchronized void startPreCopy() {
        for (Entry e : entries) {
            Migration m = migration(e.io());
            try {
                if (m == null || !m.offersPreCopy()) {
                    continue;
                }
                m.setState(VfioDeviceMigState.PRE_COPY);
                stopped.add(m);
                inPreCopy.put(e.name(), m);
                byte[] early = m.readAll(MAX_DATA);
                preCopied.put(e.name(), early);
                log.info("{}: PRE_COPY: {} bytes of device state read while it runs", e.name(), early.length);
            } catch (RuntimeException x) {
                throw new ControlException("migrate failed: " + label(e) + ": PRE_COPY: " + x.getMessage() + "; the VM runs on", x);
            }
        }
    }

    /** Takes the devices still in PRE_COPY back to RUNNING (a migration that ended before {@link #stopAndSave}). */
    synchronized void endPreCopy() {
        for (var i = inPreCopy.entrySet().iterator(); i.hasNext(); ) {
            var e = i.next();
            stopped.remove(e.getValue());
            try {
                e.getValue().setState(VfioDeviceMigState.RUNNING);
            } catch (RuntimeException x) {
                log.error("{}: PRE_COPY back to RUNNING failed: {}", e.getKey(), x.getMessage());
            }
            i.remove();
        }
        preCopied.clear();
    }

    /**
     * Takes every device {@link #stopAndSave} or {@link #restore} stopped back to RUNNING (from STOP or STOP_COPY).
     *
     * @return null, or the first failure as one line (every device is tried)
     */
    synchronized String resumeAll() {
        String failure = null;
        for (Migration c : stopped) {
            try {
                c.setState(VfioDeviceMigState.RUNNING);
            } catch (RuntimeException x) {
                log.error("{}: back to RUNNING failed: {}", c.name(), x.getMessage());
                if (failure == null) {
                    failure = c.name() + " did not return to RUNNING: " + x.getMessage();
                }
            }
        }
        stopped.clear();
        inPreCopy.clear();
        preCopied.clear();
        return failure;
    }

    /** @return the record of {@link #TAG} for one vfio-user device */
    static byte[] encode(byte[] data, byte[] client) {
        return encode(KIND_VFIO_USER, data, client);
    }

    /** @return the record of {@link #TAG} for one device of {@code kind} */
    static byte[] encode(int kind, byte[] data, byte[] client) {
        return new StateWriter(TAG, VERSION).u8(kind).bytes(data).bytes(client).toByteArray();
    }

    /** A device's record, parsed. */
    record Saved(int kind, byte[] data, byte[] client) {
    }

    /** @throws StateException if {@code record} is not one {@link #encode} can have written */
    static Saved decode(String name, byte[] record) {
        var r = new StateReader(name, record, TAG, VERSION);
        int kind = (int) r.check("kind", r.u8(), KIND_VFIO_USER, KIND_KERNEL_VFIO);
        byte[] data = r.bytes("migration data", MAX_DATA);
        byte[] client = r.bytes("client state", MAX_CLIENT);
        r.end();
        return new Saved(kind, data, client);
    }

    /**
     * @return {@code saved}, parsed from a record of the kind {@code io} migrates by
     * @throws StateException if the record is damaged or of another kind (a vfio-user record for a kernel VFIO device)
     */
    static Saved decode(String name, byte[] record, VfioDeviceIo io) {
        Saved saved = decode(name, record);
        Migration m = migration(io);
        int want = m == null ? -1 : m.kind();
        if (saved.kind() != want) {
            throw new StateException(name + ": the record is of kind " + saved.kind() + " (" + kindName(saved.kind())
                    + "), the device is " + (m == null ? "of neither kind" : "of kind " + want + " (" + kindName(want) + ")"));
        }
        return saved;
    }

    static String kindName(int kind) {
        return kind == KIND_KERNEL_VFIO ? "kernel VFIO" : kind == KIND_VFIO_USER ? "vfio-user" : "unknown";
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
            try {
                records.add(decode(name, record, entries.get(i).io()));
            } catch (StateException x) {
                throw new ConfigException("restore", "{setting}: " + x.getMessage(), x);
            }
        }
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            Migration m = migration(e.io());
            try {
                if (!m.offered()) {
                    throw new ConfigException("restore", "{setting}: " + label(e) + ": " + transport(m.kind())
                            + " does not offer migration");
                }
                m.setState(VfioDeviceMigState.RESUMING);
                stopped.add(m);
                m.writeAll(records.get(i).data());
                m.setState(VfioDeviceMigState.STOP);
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
