package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A test double of a VFIO device (not of the code under test): each region is a byte array; reads and writes
 * land in it and writes are logged, as a device behind VFIO whose registers simply hold what is written.
 */
final class FakeVfioDevice implements VfioDeviceIo {
    record Write(int region, long offset, int length) {
    }

    final byte[][] regions = new byte[vfio_h.VFIO_PCI_NUM_REGIONS()][];
    final int[] flags = new int[vfio_h.VFIO_PCI_NUM_REGIONS()];
    final List<Write> writes = new ArrayList<>();
    /** Per region index: the sparse mmap areas its info reports (unchecked: a lying device), or none. */
    final java.util.Map<Integer, List<VfioRegionInfo.Area>> sparse = new java.util.HashMap<>();

    FakeVfioDevice() {
        region(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 256, 3);
    }

    FakeVfioDevice region(int index, int size, int regionFlags) {
        regions[index] = new byte[size];
        flags[index] = regionFlags;
        return this;
    }

    byte[] config() {
        return regions[vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()];
    }

    void set(int offset, int size, long value) {
        for (int i = 0; i < size; i++) {
            config()[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    int get(int region, int offset, int size) {
        int v = 0;
        for (int i = 0; i < size; i++) {
            v |= (regions[region][offset + i] & 0xFF) << (8 * i);
        }
        return v;
    }

    /** Config writes that touched {@code [from, to)}. */
    List<Write> configWritesIn(int from, int to) {
        return writes.stream().filter(w -> w.region() == vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()
                && w.offset() < to && w.offset() + w.length() > from).toList();
    }

    @Override
    public String name() {
        return "fake";
    }

    @Override
    public VfioDeviceInfo deviceInfo() {
        return new VfioDeviceInfo(vfio_h.VFIO_DEVICE_FLAGS_PCI(), regions.length, vfio_h.VFIO_PCI_NUM_IRQS());
    }

    @Override
    public VfioRegionInfo regionInfo(int index) {
        byte[] r = regions[index];
        List<VfioRegionInfo.Capability> caps = sparse.containsKey(index) ? List.of(new VfioRegionInfo.SparseMmap(sparse.get(index))) : List.of();
        return new VfioRegionInfo(index, flags[index], r == null ? 0 : r.length, (long) index << 40, caps);
    }

    @Override
    public VfioIrqInfo irqInfo(int index) {
        return new VfioIrqInfo(index, vfio_h.VFIO_IRQ_INFO_EVENTFD(), 1);
    }

    /** Every SET_IRQS, in order (refused ones too). */
    final List<VfioIrqSet> irqSets = new ArrayList<>();
    /** SET_IRQS this fake refuses, as a server's error reply or a failing ioctl would; none by default. */
    java.util.function.Predicate<VfioIrqSet> refuseIrqSet = set -> false;

    @Override
    public void setIrqs(VfioIrqSet set) {
        irqSets.add(set);
        if (refuseIrqSet.test(set)) {
            throw new IllegalStateException("fake: SET_IRQS index " + set.index() + " refused (EINVAL)");
        }
    }

    /** Region accesses refused (outside the region): a real device answers them with an error. */
    int refused;

    private byte[] checked(int index, long offset, long size) {
        byte[] r = regions[index];
        if (r == null || offset < 0 || offset + size > r.length) {
            refused++;
            throw new IllegalArgumentException("fake: region " + index + " access at " + offset + " of " + size);
        }
        return r;
    }

    @Override
    public void regionRead(int index, long offset, MemorySegment buffer) {
        byte[] r = checked(index, offset, buffer.byteSize());
        MemorySegment.copy(r, (int) offset, buffer, ValueLayout.JAVA_BYTE, 0, (int) buffer.byteSize());
    }

    @Override
    public void regionWrite(int index, long offset, MemorySegment buffer) {
        byte[] r = checked(index, offset, buffer.byteSize());
        MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, r, (int) offset, (int) buffer.byteSize());
        writes.add(new Write(index, offset, (int) buffer.byteSize()));
    }

    @Override
    public MemorySegment mmap(int index, long offset, long size) {
        checked(index, offset, size);
        // Anonymous memory standing in for the BAR's pages (not the region's bytes): enough for mappers to place it.
        return dev.panamax.core.sys.Libc.mmap(size, dev.panamax.core.sys.Libc.PROT_READ | dev.panamax.core.sys.Libc.PROT_WRITE,
                dev.panamax.core.sys.Libc.MAP_PRIVATE | dev.panamax.core.sys.Libc.MAP_ANONYMOUS, -1, 0, "fake BAR");
    }

    @Override
    public void reset() {
    }

    @Override
    public void close() {
    }
}
