package dev.panamax.vfio;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.DeviceMemoryRegion;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.X86Layout;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Where an assigned device's BAR pages go into the guest: the BAR window yes, the VMM's reserved ranges no. */
class VfioBarMapperTest {
    private final VfioPciFunctionTest functions = new VfioPciFunctionTest();

    private static List<DeviceMemoryRegion> bars(AddressSpace space) {
        return space.regions().stream().filter(r -> r instanceof DeviceMemoryRegion).map(r -> (DeviceMemoryRegion) r).toList();
    }

    @Test
    void aBarIsMappedInTheWindowAndRefusedOverTheReservedRanges() {
        VfioPciFunction f = new VfioPciFunction(VfioPciFunctionTest.nic(), functions.listener);
        AddressSpace space = new AddressSpace();
        X86Layout.reservedRegions().forEach(space::add);
        try (VfioBarMapper mapper = new VfioBarMapper(f, space, 4096)) {
            mapper.barMapped(f, 0, f.bar(0), X86Layout.PCI_HOLE_START);
            assertEquals(List.of(X86Layout.PCI_HOLE_START), bars(space).stream().map(MemoryRegion::guestPhysicalAddress).toList());
            mapper.barUnmapped(f, 0, f.bar(0), X86Layout.PCI_HOLE_START);
            assertTrue(bars(space).isEmpty());
            for (long gpa : new long[]{X86Layout.ECAM_BASE, X86Layout.IOAPIC_BASE, X86Layout.LAPIC_BASE, X86Layout.KVM_IDENTITY_MAP_ADDRESS}) {
                mapper.barMapped(f, 0, f.bar(0), gpa); // the guest moved the BAR there: refused, left to trap
                assertTrue(bars(space).isEmpty(), Long.toHexString(gpa));
                mapper.barUnmapped(f, 0, f.bar(0), gpa);
            }
            assertEquals(X86Layout.reservedRegions().size(), space.regions().size());
        }
    }

    /**
     * A device whose sparse mmap areas leave its BAR (issue 15, defect 3): mapped, such an area would become a memory
     * slot over whatever MMIO follows the BAR in the guest. Refused when the mapper is made (at attach), with one
     * line naming the BAR, for an area past the end, one whose end wraps 2^64, and one at a "negative" offset.
     */
    @Test
    void sparseAreasOutsideTheirBarAreRefusedAtAttach() {
        long[][] bad = {{0x10000, 0x20000}, {0x1000, -0x1000L}, {-0x2000L, 0x1000}, {0x20000, 0x1000}};
        for (long[] a : bad) {
            FakeVfioDevice d = VfioPciFunctionTest.nic();
            d.sparse.put(0, List.of(new VfioRegionInfo.Area(0, 0x1000), new VfioRegionInfo.Area(a[0], a[1])));
            VfioPciFunction f = new VfioPciFunction(d, functions.listener);
            AddressSpace space = new AddressSpace();
            String what = Long.toHexString(a[0]) + "+" + Long.toHexString(a[1]);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> new VfioBarMapper(f, space, 4096), what);
            assertTrue(e.getMessage().contains("BAR 0") && !e.getMessage().contains("\n"), e.getMessage());
            assertTrue(bars(space).isEmpty(), what);
        }
    }
}
