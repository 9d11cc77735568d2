package dev.panamax.vmm;

import dev.panamax.firmware.MpTable;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciBus;
import dev.panamax.pci.PciFunction;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The MP table the machine builds from its PCI bus (firmware reads the bus, pci-bus knows no firmware). */
class MpTableOfTheBusTest {
    /** A function with only an interrupt pin (0 for none). */
    static PciFunction function(int pin) {
        var f = new PciFunction("scratch", new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(0x1AF4, 0x1234, 0, 0x0000FF, 0, 0);
        f.setInterruptPin(pin);
        return f;
    }

    @Test
    void mpTableEntriesAndChecksums() {
        var bus = new PciBus(null);
        bus.attach(1, 0, function(1));
        bus.attach(2, 0, function(1));
        bus.attach(2, 1, function(2));
        bus.attach(2, 2, function(2)); // shares INTB# with function 1: one entry
        bus.attach(3, 0, function(0)); // no pin: no entry
        MpTable table = PcFirmware.mpTable(2, bus);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(0x100000);
            table.writeTo(ram, MpTable.ADDRESS);
            MpTable read = MpTable.readFrom(ram, MpTable.ADDRESS); // checks signatures and checksums
            assertEquals(table, read);
            var buses = read.entries().stream().filter(e -> e instanceof MpTable.Bus).toList();
            assertEquals(List.of(new MpTable.Bus(0, "PCI"), new MpTable.Bus(1, "ISA")),
                    buses.stream().sorted((a, b) -> ((MpTable.Bus) a).busId() - ((MpTable.Bus) b).busId()).toList());
            var ints = read.entries().stream().filter(e -> e instanceof MpTable.IoInterrupt)
                    .map(e -> (MpTable.IoInterrupt) e).toList();
            assertEquals(16 + 3, ints.size());
            for (var i : ints.subList(0, 16)) {
                assertEquals(1, i.sourceBusId()); // ISA moved to bus 1
                assertEquals(i.sourceBusIrq(), i.destIoApicPin());
                assertEquals(MpTable.CONFORMS, i.flags());
            }
            int ioApic = read.ioApicId();
            assertEquals(List.of(
                    new MpTable.IoInterrupt(MpTable.INT, 0xF, 0, 1 << 2, ioApic, 17),
                    new MpTable.IoInterrupt(MpTable.INT, 0xF, 0, 2 << 2, ioApic, 18),
                    new MpTable.IoInterrupt(MpTable.INT, 0xF, 0, 2 << 2 | 1, ioApic, 19)), ints.subList(16, 19));
            var locals = read.entries().stream().filter(e -> e instanceof MpTable.LocalInterrupt)
                    .map(e -> (MpTable.LocalInterrupt) e).toList();
            assertTrue(locals.stream().allMatch(l -> l.sourceBusId() == 1));
        }
    }
}
