package dev.panamax.pci;

import static dev.panamax.pci.PciConfigSpace.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class PciFunctionTest {
    /** Records BAR events as strings. */
    static final class Events implements BarListener {
        final List<String> log = new ArrayList<>();

        @Override
        public void barMapped(PciFunction f, int index, PciBar bar, long address) {
            log.add("map " + index + " 0x" + Long.toHexString(address));
        }

        @Override
        public void barUnmapped(PciFunction f, int index, PciBar bar, long address) {
            log.add("unmap " + index + " 0x" + Long.toHexString(address));
        }
    }

    /** A RAM-like region: 4-byte registers. */
    static final class Scratch implements BusDevice {
        final long[] words = new long[64];

        @Override
        public long read(long offset, int size) {
            return words[(int) offset / 4];
        }

        @Override
        public void write(long offset, int size, long value) {
            words[(int) offset / 4] = value;
        }
    }

    static PciFunction function() {
        var f = new PciFunction("test", new PciConfigSpace(SIZE));
        f.config().initHeader(0x1AF4, 0x10F0, 0, 0xFF0000, 0, 0);
        return f;
    }

    static int bar(int i) {
        return BASE_ADDRESS_0 + 4 * i;
    }

    @Test
    void sizingEachKind() {
        var f = function();
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, new PciBar(PciBar.Kind.MEMORY32, 0x10_0000, true), null);
        f.setBar(2, PciBar.memory64(0x4000, false), null);
        f.setBar(4, PciBar.io(0x20), null);
        for (int i = 0; i < 6; i++) {
            f.configWrite(bar(i), 4, 0xFFFFFFFF);
        }
        assertEquals(0xFFFFF000, f.configRead(bar(0), 4));
        assertEquals(0xFFF00008, f.configRead(bar(1), 4));
        assertEquals(0xFFFFC004, f.configRead(bar(2), 4));
        assertEquals(0xFFFFFFFF, f.configRead(bar(3), 4)); // upper dword of the 64-bit BAR
        assertEquals(0xFFFFFFE1, f.configRead(bar(4), 4));
        assertEquals(0, f.configRead(bar(5), 4)); // no BAR: hardwired 0
        // Size as software computes it: ~(value & mask) + 1.
        assertEquals(0x1000, ~(f.configRead(bar(0), 4) & PciBar.MEM_MASK) + 1);
        assertEquals(0x20, ~(f.configRead(bar(4), 4) & PciBar.IO_MASK) + 1);
        // Restoring the original values.
        f.configWrite(bar(0), 4, 0);
        assertEquals(0, f.configRead(bar(0), 4));
        f.configWrite(bar(1), 4, 0);
        assertEquals(PciBar.MEM_PREFETCH, f.configRead(bar(1), 4));
    }

    @Test
    void sizingAHuge64BitPrefetchableBar() {
        var f = function();
        f.setBar(0, PciBar.memory64(8L << 30, true), null);
        f.configWrite(bar(0), 4, 0xFFFFFFFF);
        f.configWrite(bar(1), 4, 0xFFFFFFFF);
        assertEquals(0x0000000C, f.configRead(bar(0), 4));
        assertEquals(0xFFFFFFFE, f.configRead(bar(1), 4));
        long size = ~((long) f.configRead(bar(1), 4) << 32 | (f.configRead(bar(0), 4) & PciBar.MEM_MASK)) + 1;
        assertEquals(8L << 30, size);
    }

    @Test
    void barDescriptionsAreChecked() {
        assertThrows(IllegalArgumentException.class, () -> PciBar.memory32(0x1800));
        assertThrows(IllegalArgumentException.class, () -> PciBar.memory32(8));
        assertThrows(IllegalArgumentException.class, () -> PciBar.memory32(1L << 32));
        assertThrows(IllegalArgumentException.class, () -> PciBar.io(512));
        assertThrows(IllegalArgumentException.class, () -> new PciBar(PciBar.Kind.IO, 16, true));
        var f = function();
        assertThrows(IllegalArgumentException.class, () -> f.setBar(5, PciBar.memory64(0x1000, false), null));
        f.setBar(2, PciBar.memory64(0x1000, false), null);
        assertThrows(IllegalArgumentException.class, () -> f.setBar(3, PciBar.memory32(0x1000), null));
        assertThrows(IllegalArgumentException.class, () -> f.setBar(2, PciBar.io(4), null));
        f.setBar(1, PciBar.memory32(0x1000), null);
        assertThrows(IllegalArgumentException.class, () -> f.setBarAddress(1, 0x800));
        assertThrows(IllegalArgumentException.class, () -> f.setBarAddress(1, 1L << 32));
        assertThrows(IllegalArgumentException.class, () -> f.barAddress(0));
    }

    @Test
    void commandRegisterDecodeBitsMapAndUnmap() {
        var f = function();
        var events = new Events();
        f.addBarListener(events);
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, PciBar.io(0x10), null);
        f.setBar(2, PciBar.memory64(0x10_0000, true), null);
        f.setBarAddress(0, 0xC000_0000L);
        f.setBarAddress(1, 0xC010);
        f.setBarAddress(2, 0x1_4000_0000L);
        assertEquals(List.of(), events.log); // decode is off at reset
        f.configWrite(COMMAND, 2, COMMAND_MEMORY);
        assertEquals(List.of("map 0 0xc0000000", "map 2 0x140000000"), events.log);
        events.log.clear();
        f.configWrite(COMMAND, 1, COMMAND_MEMORY | COMMAND_IO);
        assertEquals(List.of("map 1 0xc010"), events.log);
        assertEquals(0xC010, f.decodedAddress(1));
        events.log.clear();
        f.configWrite(COMMAND, 2, COMMAND_IO);
        assertEquals(List.of("unmap 0 0xc0000000", "unmap 2 0x140000000"), events.log);
        assertEquals(-1, f.decodedAddress(0));
        events.log.clear();
        f.configWrite(COMMAND, 2, 0);
        assertEquals(List.of("unmap 1 0xc010"), events.log);
    }

    @Test
    void movingAndSizingABarWhileDecoding() {
        var f = function();
        var events = new Events();
        f.addBarListener(events);
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(2, PciBar.memory64(0x1000, false), null);
        f.setBarAddress(0, 0xC000_0000L);
        f.setBarAddress(2, 0xC000_1000L);
        f.configWrite(COMMAND, 2, COMMAND_MEMORY);
        events.log.clear();
        f.configWrite(bar(0), 4, 0xD000_0000);
        assertEquals(List.of("unmap 0 0xc0000000", "map 0 0xd0000000"), events.log);
        events.log.clear();
        // Sizing with decode on (Linux leaves it on for some devices): the all-ones pattern is not a mapping.
        f.configWrite(bar(0), 4, 0xFFFFFFFF);
        assertEquals(List.of("unmap 0 0xd0000000"), events.log);
        f.configWrite(bar(0), 4, 0xD000_0000);
        events.log.clear();
        // Linux's __pci_read_base: size the low dword and restore it, then the high dword.
        f.configWrite(bar(2), 4, 0xFFFFFFFF);
        assertEquals(0xFFFFF004, f.configRead(bar(2), 4));
        f.configWrite(bar(2), 4, 0xC000_1000);
        f.configWrite(bar(3), 4, 0xFFFFFFFF);
        assertEquals(0xFFFFFFFF, f.configRead(bar(3), 4));
        f.configWrite(bar(3), 4, 0);
        assertEquals(List.of("unmap 2 0xc0001000", "map 2 0xc0001000", "unmap 2 0xc0001000", "map 2 0xc0001000"),
                events.log);
        events.log.clear();
        // A 64-bit BAR moved above 4 GiB: low dword first, then high.
        f.configWrite(bar(3), 4, 0x2);
        assertEquals(List.of("unmap 2 0xc0001000", "map 2 0x2c0001000"), events.log);
        // Zero is not a valid address.
        events.log.clear();
        f.configWrite(bar(0), 4, 0);
        assertEquals(List.of("unmap 0 0xd0000000"), events.log);
    }

    @Test
    void busBarMapperPutsRegionsOnTheBuses() {
        var pio = new Bus("pio");
        var mmio = new Bus("mmio");
        var f = function();
        f.addBarListener(new BusBarMapper(pio, mmio));
        var regs = new Scratch();
        var ports = new Scratch();
        f.setBar(0, PciBar.memory32(0x100), regs);
        f.setBar(1, PciBar.io(0x10), ports);
        f.setBarAddress(0, 0xC000_0000L);
        f.setBarAddress(1, 0xC000);
        f.configWrite(COMMAND, 2, COMMAND_MEMORY | COMMAND_IO);
        mmio.write(0xC000_0008L, 4, 0x55);
        assertEquals(0x55, regs.words[2]);
        pio.write(0xC004, 4, 0x66);
        assertEquals(0x66, ports.words[1]);
        f.configWrite(bar(0), 4, 0xC000_1000);
        assertNull(mmio.find(0xC000_0000L));
        assertEquals(0x55, mmio.read(0xC000_1008L, 4));
        f.configWrite(COMMAND, 2, 0);
        assertTrue(mmio.mappings().isEmpty());
        assertTrue(pio.mappings().isEmpty());
    }

    @Test
    void intxFollowsStatusAndInterruptDisable() {
        var f = function();
        var levels = new ArrayList<Boolean>();
        f.config().set8(INTERRUPT_PIN, 1);
        f.connectIntx(levels::add);
        f.setIntx(true);
        assertEquals(List.of(true), levels);
        assertTrue((f.configRead(STATUS, 2) & STATUS_INTERRUPT) != 0);
        f.configWrite(COMMAND, 2, COMMAND_INTX_DISABLE);
        assertEquals(List.of(true, false), levels);
        assertTrue((f.configRead(STATUS, 2) & STATUS_INTERRUPT) != 0); // status still shows the pin
        f.configWrite(COMMAND, 2, 0);
        assertEquals(List.of(true, false, true), levels);
        f.setIntx(false);
        assertEquals(List.of(true, false, true, false), levels);
        assertFalse((f.configRead(STATUS, 2) & STATUS_INTERRUPT) != 0);
    }

    @Test
    void readHooksRunBeforeReadsThatOverlapTheirRange() {
        var f = function();
        int[] reads = {0};
        f.addConfigReadHook(0x40, 4, () -> f.config().set32(0x40, 0x1000 + ++reads[0]));
        assertEquals(0x1001, f.configRead(0x40, 4));
        assertEquals(0x10, f.configRead(0x41, 1), "a read of part of the range");
        assertEquals(0, f.configRead(0x44, 4), "outside the range: no hook");
        assertEquals(2, reads[0]);
        f.configRead(0x3E, 4);
        assertEquals(3, reads[0], "a read that overlaps the start");
        assertThrows(IllegalArgumentException.class, () -> f.addConfigReadHook(254, 4, () -> { }));
        assertThrows(IllegalArgumentException.class, () -> f.addConfigReadHook(0x40, 0, () -> { }));
    }
}
