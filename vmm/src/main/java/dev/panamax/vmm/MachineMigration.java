package dev.panamax.vmm;

import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.kvm.KvmVm;
import dev.panamax.vmm.migration.MigrationSource;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SnapshotManifest;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.Supplier;

/**
 * A running machine as {@link MigrationSource} sees it: guest RAM in host-mapping order, KVM's dirty log of each RAM
 * slot ({@link KvmVm#dirtyLog}) merged into one bitmap over that order, and pause, resume and capture through
 * {@link MachineControl}.
 */
final class MachineMigration implements MigrationSource.Vm {
    private final MachineControl control;
    private final KvmVm vm;
    private final GuestRam ram;
    private final SnapshotManifest.Machine machine;
    private final List<SnapshotManifest.Device> devices;
    private final Supplier<MachineState> capture;

    MachineMigration(MachineControl control, KvmVm vm, GuestRam ram, SnapshotManifest.Machine machine,
                     List<SnapshotManifest.Device> devices, Supplier<MachineState> capture) {
        this.control = control;
        this.vm = vm;
        this.ram = ram;
        this.machine = machine;
        this.devices = devices;
        this.capture = capture;
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

    @Override
    public void startDirtyLog() {
        vm.startDirtyLog();
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
            System.arraycopy(part, 0, bitmap, (int) (firstPage / 64), Math.min(part.length, bitmap.length - (int) (firstPage / 64)));
        }
        return bitmap;
    }

    @Override
    public void stopDirtyLog() {
        vm.stopDirtyLog();
    }

    @Override
    public boolean paused() {
        return control.status().state().equals(dev.panamax.vmm.api.VmControl.Status.PAUSED);
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
