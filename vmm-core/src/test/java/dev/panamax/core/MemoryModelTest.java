package dev.panamax.core;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.MmioRegion;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.core.sys.Libc;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryModelTest {
    static final class Log implements MemoryListener {
        final List<String> events = new ArrayList<>();

        @Override
        public void regionAdded(MemoryRegion r) {
            events.add("+" + r.name());
        }

        @Override
        public void regionRemoved(MemoryRegion r) {
            events.add("-" + r.name());
        }
    }

    @Test
    void smallGuestHasOnlyLowRam() {
        AddressSpace space = new AddressSpace();
        try (GuestRam ram = new GuestRam(space, 64L << 20)) {
            assertEquals(1, ram.regions().size());
            assertEquals(0, ram.low().guestPhysicalAddress());
            assertEquals(64L << 20, ram.low().size());
            assertEquals(0, ram.highBytes());
        }
        assertTrue(space.regions().isEmpty());
    }

    @Test
    void largeGuestIsSplitAroundThePciHole() {
        AddressSpace space = new AddressSpace();
        long size = X86Layout.PCI_HOLE_START + (512L << 20); // 3.5 GiB, never touched: MAP_NORESERVE
        try (GuestRam ram = new GuestRam(space, size)) {
            List<RamRegion> r = space.ramRegions();
            assertEquals(2, r.size());
            assertEquals(X86Layout.PCI_HOLE_START, r.get(0).end());
            assertEquals(X86Layout.HIGH_RAM_START, r.get(1).guestPhysicalAddress());
            assertEquals(512L << 20, r.get(1).size());
            assertEquals(X86Layout.PCI_HOLE_START, r.get(1).fdOffset());
            // The high region's host memory is the memfd right after the low part.
            space.ram(X86Layout.HIGH_RAM_START + 8, 8).set(JAVA_LONG, 0, 0x1234_5678L);
            assertEquals(0x1234_5678L, ram.memfd().mapping().get(JAVA_LONG, X86Layout.PCI_HOLE_START + 8));
        }
    }

    @Test
    void ramIsSharedThroughTheMemfd() throws Exception {
        AddressSpace space = new AddressSpace();
        try (GuestRam ram = new GuestRam(space, 4L << 20)) {
            space.ram(0x1000, 8).set(JAVA_LONG, 0, 0xdead_beef_cafe_f00dL);
            // A second, independent mapping of the same fd (what a vfio-user server does) sees the write.
            MemorySegment other = Libc.mmap(4L << 20, Libc.PROT_READ, Libc.MAP_SHARED, ram.memfd().fd(), 0, "test");
            try {
                assertEquals(0xdead_beef_cafe_f00dL, other.get(JAVA_LONG, 0x1000));
            } finally {
                Libc.munmap(other);
            }
            assertTrue(Files.readSymbolicLink(Path.of("/proc/self/fd/" + ram.memfd().fd())).toString()
                    .contains("memfd:panamax-guest-ram"));
        }
    }

    @Test
    void listenersAreReplayedAndToldOfChanges() {
        AddressSpace space = new AddressSpace();
        MmioRegion ioapic = new MmioRegion("ioapic", X86Layout.IOAPIC_BASE, 0x1000);
        space.add(ioapic);
        Log log = new Log();
        try (GuestRam ram = new GuestRam(space, 2L << 20)) {
            space.addListener(log);
            assertEquals(List.of("+ram-low", "+ioapic"), log.events);
            space.remove(ioapic);
            space.removeListener(log);
            assertEquals(List.of("+ram-low", "+ioapic", "-ioapic", "-ram-low"), log.events);
        }
    }

    @Test
    void badRangesAreRefused() {
        AddressSpace space = new AddressSpace();
        try (GuestRam ram = new GuestRam(space, 2L << 20)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> space.add(new MmioRegion("dev", 0x1000, 0x1000)));
            assertTrue(e.getMessage().contains("overlaps ram-low"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> space.ram((2L << 20) - 4, 8));
            assertTrue(e.getMessage().contains("not guest RAM"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new GuestRam(new AddressSpace(), 3L << 20));
        }
    }
}
