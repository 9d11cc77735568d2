package dev.panamax.vmm;

import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.kvm.KvmVm;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.client.VfioUserMigration;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaRange;
import dev.panamax.vmm.api.VmControl;
import dev.panamax.vmm.migration.MigrationSource;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SnapshotManifest;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * A running machine as {@link MigrationSource} sees it: guest RAM in host-mapping order, KVM's dirty log of each RAM
 * slot ({@link KvmVm#dirtyLog}) merged into one bitmap over that order with each assigned vfio-user device's DMA log
 * ({@link VfioUserMigration#reportDmaLogging}, the pages its server wrote through the shared memfd, which KVM never
 * sees), and pause, resume and capture through {@link MachineControl}. Devices that offer PRE_COPY go there when
 * the dirty log starts ({@link AssignedDeviceSnapshot#startPreCopy}). A device that keeps no DMA log (a server that
 * does not offer {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}, a kernel VFIO device) is an
 * {@link #unloggedWriters unlogged writer}.
 */
final class MachineMigration implements MigrationSource.Vm {
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(MachineMigration.class);
    /** The DMA log's page: the guest's and KVM's. */
    private static final long PAGE = 4096;
    private final MachineControl control;
    private final KvmVm vm;
    private final GuestRam ram;
    private final SnapshotManifest.Machine machine;
    private final List<SnapshotManifest.Device> devices;
    private final Supplier<MachineState> capture;
    private final AssignedDeviceSnapshot assigned;
    /** The devices whose DMA logging runs, and those that keep no log; filled by {@link #startDirtyLog}. */
    private final List<VfioUserMigration> logging = new ArrayList<>();
    private final List<String> unlogged = new ArrayList<>();

    MachineMigration(MachineControl control, KvmVm vm, GuestRam ram, SnapshotManifest.Machine machine,
                     List<SnapshotManifest.Device> devices, AssignedDeviceSnapshot assigned,
                     Supplier<MachineState> capture) {
        this.control = control;
        this.vm = vm;
        this.ram = ram;
        this.machine = machine;
        this.devices = devices;
        this.capture = capture;
        this.assigned = assigned;
    }

    @Override
    public SnapshotManifest.Machine machine() {
        return machine;
    }

    @Override
    public List<SnapshotManifest.Device> devices() {
        return devices;
    }

    @Override
    public MemorySegment ram() {
        return ram.memory().mapping();
    }

    /** KVM's dirty log, then each device's DMA log over every RAM region (its DMA_MAP ranges: IOVA = guest-physical). */
    @Override
    public void startDirtyLog() {
        vm.startDirtyLog();
        List<DmaRange> ranges = ram.regions().stream().map(r -> new DmaRange(r.guestPhysicalAddress(), r.size())).toList();
        for (AssignedDeviceSnapshot.Entry e : assigned.entries()) {
            if (e.io() instanceof VfioUserClient c && c.migration().dmaLoggingOffered()) {
                c.migration().startDmaLogging(PAGE, ranges);
                logging.add(c.migration());
                log.info("{}: vfio-user DMA logging started over {} RAM ranges", e.name(), ranges.size());
            } else {
                unlogged.add(e.name());
            }
        }
        assigned.startPreCopy(); // devices that offer PRE_COPY give their first data now, while they run
    }

    @Override
    public List<String> unloggedWriters() {
        return List.copyOf(unlogged);
    }

    /** Each RAM region's bitmap put at its page offset in the host mapping (a multiple of 64 pages: 2 MiB-aligned). */
    @Override
    public long[] dirtyPages() {
        MemorySegment all = ram.memory().mapping();
        long[] bitmap = new long[(int) ((all.byteSize() / 4096 + 63) / 64)];
        for (RamRegion r : ram.regions()) {
            long firstPage = (r.host().address() - all.address()) / 4096;
            if (firstPage % 64 != 0) {
                throw new IllegalStateException("RAM region " + r.name() + " starts at page " + firstPage
                        + " of guest RAM, not a multiple of 64");
            }
            long[] part = vm.dirtyLog(r);
            for (VfioUserMigration m : logging) {
                MigrationSource.or(part, m.reportDmaLogging(r.guestPhysicalAddress(), r.size(), PAGE));
            }
            System.arraycopy(part, 0, bitmap, (int) (firstPage / 64), Math.min(part.length, bitmap.length - (int) (firstPage / 64)));
        }
        return bitmap;
    }

    /** Stops KVM's dirty log and every device's DMA log (a device that fails to stop is logged, not thrown). */
    @Override
    public void stopDirtyLog() {
        vm.stopDirtyLog();
        for (VfioUserMigration m : logging) {
            try {
                m.stopDmaLogging();
            } catch (RuntimeException x) {
                log.warn("stopping a device's DMA logging failed: {}", x.getMessage());
            }
        }
        logging.clear();
        unlogged.clear();
        assigned.endPreCopy(); // a migration that ended before the devices were saved: those in PRE_COPY run on
    }

    @Override
    public boolean paused() {
        return control.status().state().equals(VmControl.Status.PAUSED);
    }

    @Override
    public void pause() {
        control.pause();
    }

    @Override
    public void resume() {
        control.resume();
    }

    @Override
    public MachineState capture() {
        return capture.get();
    }
}
