package dev.panamax.core;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BusTest {
    /** A device that records accesses and answers reads with offset + 0x100. */
    static final class Recorder implements BusDevice {
        final List<String> log = new ArrayList<>();

        @Override
        public long read(long offset, int size) {
            log.add("r " + offset + " " + size);
            return offset + 0x100;
        }

        @Override
        public void write(long offset, int size, long value) {
            log.add("w " + offset + " " + size + " " + value);
        }
    }

    @Test
    void routesToTheDeviceWithOffsets() {
        Bus bus = new Bus("pio");
        Recorder uart = new Recorder();
        Recorder other = new Recorder();
        bus.register(0x3f8, 8, "uart", uart);
        bus.register(0x60, 5, "i8042", other);
        assertEquals(0x105, bus.read(0x3fd, 1));
        bus.write(0x3f8, 1, 'A');
        bus.write(0x64, 1, 0xfe);
        assertEquals(List.of("r 5 1", "w 0 1 65"), uart.log);
        assertEquals(List.of("w 4 1 254"), other.log);
    }

    @Test
    void unclaimedReadsAllOnesAndWritesAreDropped() {
        Bus bus = new Bus("pio");
        Recorder d = new Recorder();
        bus.register(0x100, 0x10, "d", d);
        assertEquals(0xff, bus.read(0xff, 1));
        assertEquals(0xffff, bus.read(0x110, 2));
        assertEquals(0xffffffffL, bus.read(0x0, 4));
        assertEquals(-1L, bus.read(0x0, 8));
        bus.write(0x110, 4, 1);
        assertTrue(d.log.isEmpty());
        assertNull(bus.find(0x110));
        assertEquals("d", bus.find(0x10f).name());
    }

    @Test
    void overlapsAreRefusedAndUnregisterFrees() {
        Bus bus = new Bus("mmio");
        bus.register(0x1000, 0x1000, "a", new Recorder());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> bus.register(0x1fff, 2, "b", new Recorder()));
        assertTrue(e.getMessage().contains("overlaps a"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> bus.register(0x800, 0x801, "c", new Recorder()));
        bus.register(0x800, 0x800, "c", new Recorder());
        bus.unregister(0x1000);
        bus.register(0x1000, 0x10, "b", new Recorder());
        assertEquals(List.of("c", "b"), bus.mappings().stream().map(Bus.Mapping::name).toList());
    }
}
