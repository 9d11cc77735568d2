package dev.panamax.core;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.DeviceMemoryRegion;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.memory.ReservedRegion;
import dev.panamax.core.memory.X86Layout;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ranges the VMM owns, reserved in the address space: a BAR or memory slot over them is refused. */
class ReservedRegionsTest {
    private static AddressSpace reserved() {
        AddressSpace space = new AddressSpace();
        X86Layout.reservedRegions().forEach(space::add);
        return space;
    }

    private static DeviceMemoryRegion bar(long gpa, long size) {
        return new DeviceMemoryRegion("bar", gpa, size, Arena.ofAuto().allocate(size, 4096));
    }

    @Test
    void reservedRangesAreTheFixedOnesAndLieInTheHoleAboveTheBarWindow() {
        List<ReservedRegion> r = X86Layout.reservedRegions();
        assertEquals(List.of("pci-ecam", "ioapic", "lapic", "kvm-identity-map", "kvm-tss"),
                r.stream().map(ReservedRegion::name).toList());
        for (ReservedRegion region : r) {
            assertTrue(region.guestPhysicalAddress() >= X86Layout.PCI_MMIO32_END && region.end() <= X86Layout.HIGH_RAM_START,
                    region.name());
        }
        assertEquals(X86Layout.KVM_TSS_ADDRESS, X86Layout.KVM_IDENTITY_MAP_ADDRESS + X86Layout.KVM_IDENTITY_MAP_SIZE);
    }

    @Test
    void aBarOverAnyReservedRangeIsRefused() {
        AddressSpace space = reserved();
        for (long gpa : new long[]{X86Layout.ECAM_BASE, X86Layout.ECAM_BASE + X86Layout.ECAM_SIZE - 0x1000,
                X86Layout.IOAPIC_BASE, X86Layout.LAPIC_BASE, X86Layout.KVM_IDENTITY_MAP_ADDRESS,
                X86Layout.KVM_TSS_ADDRESS, X86Layout.KVM_TSS_ADDRESS + 0x2000, X86Layout.IOAPIC_BASE - 0x1000}) {
            long at = gpa;
            String m = assertThrows(IllegalArgumentException.class, () -> space.add(bar(at, 0x2000)),
                    Long.toHexString(gpa)).getMessage();
            assertTrue(m.contains("overlaps"), m);
        }
        assertEquals(5, space.regions().size());
    }

    @Test
    void barsInThe32BitWindowAreAccepted() {
        AddressSpace space = reserved();
        space.add(bar(X86Layout.PCI_HOLE_START, 0x10_0000));
        space.add(bar(X86Layout.PCI_MMIO32_END - 0x1000, 0x1000)); // the last page below the ECAM window
        space.add(bar(X86Layout.ECAM_BASE + X86Layout.ECAM_SIZE, 0x1000)); // between the ECAM window and the IOAPIC
        assertEquals(8, space.regions().size());
    }

    @Test
    void guestRamFitsAroundThemAndListenersSeeNoSlotForThem() {
        List<MemoryRegion> told = new ArrayList<>();
        AddressSpace space = new AddressSpace();
        space.addListener(new MemoryListener() {
            @Override
            public void regionAdded(MemoryRegion region) {
                told.add(region);
            }

            @Override
            public void regionRemoved(MemoryRegion region) {
            }
        });
        X86Layout.reservedRegions().forEach(space::add);
        try (GuestRam ram = new GuestRam(space, 64L << 20)) {
            assertTrue(told.containsAll(X86Layout.reservedRegions()), "listeners are told; memory listeners skip them");
            RamRegion low = ram.low();
            String m = assertThrows(IllegalArgumentException.class,
                    () -> space.add(bar(low.guestPhysicalAddress() + 0x1000, 0x1000)), "a BAR over RAM").getMessage();
            assertTrue(m.contains("overlaps ram"), m);
        }
    }
}
