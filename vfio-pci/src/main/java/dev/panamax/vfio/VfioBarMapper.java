package dev.panamax.vfio;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.DeviceMemoryRegion;
import dev.panamax.core.sys.Libc;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.bindings.vfio_h;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Puts an assigned device's BARs straight into the guest: each area of a memory BAR that the device lets this
 * process mmap ({@link VfioPciFunction#mmapAreas}: the region's mmap areas less the MSI-X table and PBA pages) is
 * mapped once, here, and added to the guest's {@link AddressSpace} as a {@link DeviceMemoryRegion} wherever the
 * guest places the BAR, so KVM gives it a memory slot and the guest's accesses never exit. What is not mapped
 * (the MSI-X pages, I/O BARs, BARs the device will not let us map) traps to the function's BAR regions on the
 * MMIO or PIO bus ({@link dev.panamax.pci.BusBarMapper}).
 *
 * <p>A BAR the guest moves is removed at the old address and added at the new one; a placement the address space
 * refuses (over RAM, say) is logged and left to trap.
 */
public final class VfioBarMapper implements BarListener, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VfioBarMapper.class);

    private final VfioPciFunction function;
    private final AddressSpace space;
    private final long pageSize;
    /** Per BAR: the mmapped areas (offset in the BAR, host mapping). */
    private final Map<Integer, List<Mapped>> mappings = new HashMap<>();
    /** Per BAR: the regions now in the address space. */
    private final Map<Integer, List<DeviceMemoryRegion>> placed = new HashMap<>();

    private record Mapped(Area area, MemorySegment host) {
    }

    /**
     * Maps the mappable areas of every memory BAR of {@code function} into this process and listens to its BARs.
     *
     * @param pageSize the host page size (4096 on x86): KVM's memory slots are whole pages
     * @throws IllegalStateException with one line naming the function and BAR when a mappable area does not lie
     *         inside its BAR (compared unsigned, without overflow): it would become a memory slot over other MMIO
     * @throws RuntimeException from {@link VfioDeviceIo#mmap}, after unmapping what was mapped
     */
    public VfioBarMapper(VfioPciFunction function, AddressSpace space, long pageSize) {
        this.function = function;
        this.space = space;
        this.pageSize = pageSize;
        try {
            for (int i = 0; i < PciFunction.BAR_COUNT; i++) {
                PciBar bar = function.bar(i);
                if (bar == null || bar.isIo()) {
                    continue;
                }
                List<Mapped> list = new ArrayList<>();
                mappings.put(i, list);
                for (Area a : function.device().regionInfo(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + i).mmapAreas()) {
                    checkInside(i, bar, a);
                }
                for (Area a : function.mmapAreas(i, pageSize)) {
                    checkInside(i, bar, a);
                    if (a.offset() % pageSize != 0 || a.size() % pageSize != 0) {
                        continue;
                    }
                    MemorySegment host = function.device().mmap(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + i, a.offset(), a.size());
                    list.add(new Mapped(a, host));
                    log.debug("{} BAR {}: mmapped [0x{}, +0x{})", function.name(), i, Long.toHexString(a.offset()),
                            Long.toHexString(a.size()));
                }
            }
        } catch (RuntimeException e) {
            unmapAll();
            throw e;
        }
        function.addBarListener(this);
    }

    private void checkInside(int index, PciBar bar, Area a) {
        if (!VfioRegionInfo.inside(a, bar.size())) {
            throw new IllegalStateException(String.format("%s BAR %d: mmap area 0x%x+0x%x lies outside the BAR's 0x%x bytes",
                    function.name(), index, a.offset(), a.size(), bar.size()));
        }
    }

    /** @return the areas of BAR {@code index} mapped straight into the guest when it decodes (offsets in the BAR) */
    public List<Area> mappedAreas(int index) {
        return mappings.getOrDefault(index, List.of()).stream().map(Mapped::area).toList();
    }

    @Override
    public synchronized void barMapped(PciFunction f, int index, PciBar bar, long address) {
        List<DeviceMemoryRegion> regions = new ArrayList<>();
        for (Mapped m : mappings.getOrDefault(index, List.of())) {
            long gpa = address + m.area().offset();
            if (gpa % pageSize != 0) {
                continue;
            }
            var region = new DeviceMemoryRegion(function.name() + "-bar" + index, gpa, m.area().size(), m.host());
            try {
                space.add(region);
                regions.add(region);
                log.debug("{} BAR {}: [0x{}, +0x{}) mapped into the guest at 0x{}", function.name(), index,
                        Long.toHexString(m.area().offset()), Long.toHexString(m.area().size()), Long.toHexString(gpa));
            } catch (IllegalArgumentException overlap) {
                log.warn("{} BAR {} at 0x{}: not mapped into the guest, accesses will trap: {}", function.name(), index,
                        Long.toHexString(address), overlap.getMessage());
            }
        }
        placed.put(index, regions);
    }

    @Override
    public synchronized void barUnmapped(PciFunction f, int index, PciBar bar, long address) {
        for (DeviceMemoryRegion r : placed.getOrDefault(index, List.of())) {
            space.remove(r);
        }
        placed.remove(index);
    }

    /** Takes the BARs out of the guest and unmaps them from this process. */
    @Override
    public synchronized void close() {
        for (List<DeviceMemoryRegion> list : placed.values()) {
            for (DeviceMemoryRegion r : list) {
                space.remove(r);
            }
        }
        placed.clear();
        unmapAll();
    }

    private void unmapAll() {
        for (List<Mapped> list : mappings.values()) {
            for (Mapped m : list) {
                Libc.munmap(m.host());
            }
        }
        mappings.clear();
    }
}
