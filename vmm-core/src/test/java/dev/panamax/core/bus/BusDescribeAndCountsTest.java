package dev.panamax.core.bus;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BusDescribeAndCountsTest {
    /** A device with two registers, "A" at 0 and "B" at 1, that remembers the last value written. */
    static class TwoRegisters implements BusDevice {
        long last;

        @Override
        public long read(long offset, int size) {
            return last;
        }

        @Override
        public void write(long offset, int size, long value) {
            last = value;
        }

        @Override
        public String describe(long offset, int size, boolean write, long value) {
            return (offset == 0 ? "A" : "B") + (write ? " <- " : " -> ") + value;
        }
    }

    static final BusDevice PLAIN = new BusDevice() {
        @Override
        public long read(long offset, int size) {
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
        }
    };

    @Test
    void whereNamesDeviceOffsetAndRegister() {
        Bus bus = new Bus("pio");
        bus.register(0x3f8, 8, "com1", new TwoRegisters());
        bus.register(0x70, 2, "rtc", PLAIN);
        assertEquals(" (com1+0x1 B <- 255)", Bus.where(bus.find(0x3f9), 0x3f9, 1, true, 0x1ff));
        assertEquals(" (com1+0x0 A -> 7)", Bus.where(bus.find(0x3f8), 0x3f8, 1, false, 7));
        assertEquals(" (rtc+0x1)", Bus.where(bus.find(0x71), 0x71, 1, false, 0));
        assertEquals(" (unclaimed)", Bus.where(null, 0x80, 1, true, 0));
    }

    @Test
    void aDescribeThatThrowsDoesNotBreakTheAccess() {
        BusDevice bad = new TwoRegisters() {
            @Override
            public String describe(long offset, int size, boolean write, long value) {
                throw new IllegalStateException("oops");
            }
        };
        Bus bus = new Bus("mmio");
        bus.register(0x1000, 0x10, "bad", bad);
        assertEquals(" (bad+0x4 ? (java.lang.IllegalStateException: oops))", Bus.where(bus.find(0x1004), 0x1004, 4, false, 0));
    }

    @Test
    void countsByRegistrationAddUpByName() {
        Bus bus = new Bus("mmio");
        bus.register(0x1000, 0x100, "bar0", PLAIN);
        bus.register(0x2000, 0x100, "rtc", PLAIN);
        BusCounts counts = new BusCounts();
        bus.read(0x1004, 4, counts);
        bus.write(0x1008, 4, 1, counts);
        bus.read(0x2000, 1, counts);
        bus.read(0x9000, 1, counts); // nobody
        // The guest moves bar0: a new registration, counted under the same name.
        bus.unregister(0x1000);
        bus.register(0x5000, 0x100, "bar0", PLAIN);
        assertEquals(2, bus.find(0x5000).id());
        assertEquals("bar0", bus.nameOf(0));
        bus.write(0x5000, 4, 1, counts);
        Map<String, Long> expected = new LinkedHashMap<>();
        expected.put("bar0", 3L);
        expected.put("rtc", 1L);
        expected.put("(unclaimed)", 1L);
        assertEquals(expected, counts.byName(bus));
        assertEquals(5, counts.total());
        assertEquals(1, counts.unclaimed());
        assertThrows(IndexOutOfBoundsException.class, () -> bus.nameOf(3));
    }

    /** The vCPU path (find, count, dispatch, trace check) allocates nothing per access once the counts array fits. */
    @Test
    void countedAccessesAllocateNothing() {
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        Bus bus = new Bus("pio");
        bus.register(0x3f8, 8, "com1", new TwoRegisters());
        bus.register(0x70, 2, "rtc", PLAIN);
        BusCounts counts = new BusCounts();
        long sink = 0;
        for (int i = 0; i < 200_000; i++) { // warm up (and let the JIT settle)
            bus.write(0x3f8 + (i & 7), 1, i, counts);
            sink += bus.read(0x70 + (i & 1), 1, counts);
        }
        long tid = Thread.currentThread().threadId();
        long before = threads.getThreadAllocatedBytes(tid);
        for (int i = 0; i < 1_000_000; i++) {
            bus.write(0x3f8 + (i & 7), 1, i, counts);
            sink += bus.read(0x70 + (i & 1), 1, counts);
            sink += bus.read(0x1000, 4, counts); // unclaimed
        }
        long allocated = threads.getThreadAllocatedBytes(tid) - before;
        // 3 million accesses; a single object per access would be >= 48 MB.
        assertTrue(allocated < 64 * 1024, allocated + " bytes allocated by 3M counted accesses (sink " + sink + ")");
        assertEquals(1_000_000 + 200_000, counts.byName(bus).get("com1"));
    }

    @Test
    void countsGrowPastTheFirstArray() {
        Bus bus = new Bus("pio");
        for (int i = 0; i < 40; i++) {
            bus.register(i * 4L, 4, "dev" + i, PLAIN);
        }
        BusCounts counts = new BusCounts();
        for (int i = 0; i < 40; i++) {
            for (int n = 0; n <= i; n++) {
                bus.read(i * 4L, 1, counts);
            }
        }
        Map<String, Long> byName = counts.byName(bus);
        assertEquals(40, byName.size());
        assertEquals(40L, byName.get("dev39"));
        assertEquals(1L, byName.get("dev0"));
        assertEquals(40 * 41 / 2, counts.total());
    }
}
