package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Config accesses from several vCPU threads (issue 15, defect 7): a function whose config read stalls (a vfio-user
 * server that does not answer) holds up only accesses to that function, never those to another function, through
 * either mechanism; accesses to one function from several threads stay serialized.
 */
class PciBusConcurrencyTest {
    /** How long an access to another function may take while one is stalled: generous for a loaded CI host. */
    private static final long BOUND_SECONDS = 10;
    private static final int STALLED_SLOT = 3;
    private static final int STALLED_VALUE = 0xCAFE_F00D;

    private final Bus pio = new Bus("pio");
    private final ExecutorService threads = Executors.newFixedThreadPool(3);

    @AfterEach
    void stop() {
        threads.shutdownNow();
    }

    private static int address(int device, int function, int register) {
        return PciBus.CONFIG_ENABLE | device << 11 | function << 8 | register;
    }

    private static long ecamOffset(int device, int function, int register) {
        return (long) device << 15 | function << 12 | register;
    }

    /** Stands in for an assigned device whose server has stopped answering: reads wait until released. */
    private static final class StalledDevice implements PciDevice {
        final CountDownLatch entered = new CountDownLatch(1);
        final CountDownLatch release = new CountDownLatch(1);

        @Override
        public int configRead(int offset, int size) {
            entered.countDown();
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return STALLED_VALUE;
        }

        @Override
        public void configWrite(int offset, int size, int value) {
        }

        @Override
        public int interruptPin() {
            return 0;
        }
    }

    private long readPorts(int device, int function, int register) {
        pio.write(PciBus.CONFIG_ADDRESS, 4, address(device, function, register));
        return pio.read(PciBus.CONFIG_DATA, 4);
    }

    private void stalledThenOther(boolean stallThroughEcam) throws Exception {
        var bus = new PciBus(null);
        bus.registerPorts(pio);
        BusDevice ecam = bus.ecam();
        var stalled = new StalledDevice();
        bus.attach(STALLED_SLOT, 0, stalled);

        Future<Long> first = threads.submit(() -> stallThroughEcam
                ? ecam.read(ecamOffset(STALLED_SLOT, 0, 0), 4) : readPorts(STALLED_SLOT, 0, 0));
        try {
            otherWhileStalled(ecam, stalled, first);
        } finally {
            stalled.release.countDown();
        }
        // CONFIG_ADDRESS was read once when the access began: the other thread's later write does not redirect it.
        assertEquals(Integer.toUnsignedLong(STALLED_VALUE), first.get(BOUND_SECONDS, TimeUnit.SECONDS));
    }

    private void otherWhileStalled(BusDevice ecam, StalledDevice stalled, Future<Long> first) throws Exception {
        assertTrue(stalled.entered.await(BOUND_SECONDS, TimeUnit.SECONDS), "the first access reaches the device");

        // Another vCPU reads the host bridge's IDs through both mechanisms while the first is still inside its device.
        Future<long[]> second = threads.submit(() -> new long[] {readPorts(0, 0, 0), ecam.read(ecamOffset(0, 0, 0), 4)});
        long[] ids = second.get(BOUND_SECONDS, TimeUnit.SECONDS);
        assertEquals(0x29C08086L, ids[0], "ports");
        assertEquals(0x29C08086L, ids[1], "ECAM");
        assertFalse(first.isDone(), "the stalled access is still waiting");
    }

    @Test
    void stalledPortAccessDoesNotBlockOtherFunctions() throws Exception {
        stalledThenOther(false);
    }

    @Test
    void stalledEcamAccessDoesNotBlockOtherFunctions() throws Exception {
        stalledThenOther(true);
    }

    /**
     * Keeps a dword as four bytes written one at a time, with yields between: without serialization per function,
     * a concurrent read sees bytes of two different writes.
     */
    private static final class UnguardedDevice implements PciDevice {
        private final byte[] bytes = new byte[256];

        @Override
        public int configRead(int offset, int size) {
            int v = 0;
            for (int i = 0; i < size; i++) {
                v |= (bytes[offset + i] & 0xFF) << (8 * i);
                Thread.yield();
            }
            return v;
        }

        @Override
        public void configWrite(int offset, int size, int value) {
            for (int i = 0; i < size; i++) {
                bytes[offset + i] = (byte) (value >>> (8 * i));
                Thread.yield();
            }
        }

        @Override
        public int interruptPin() {
            return 0;
        }
    }

    private static boolean oneWrite(long v) {
        return v == (v & 0xFF) * 0x0101_0101L;
    }

    /** Two threads write and read the same dword of one function, one through the ports and one through ECAM. */
    private void hammer(PciDevice device, int register) throws Exception {
        var bus = new PciBus(null);
        bus.registerPorts(pio);
        BusDevice ecam = bus.ecam();
        bus.attach(5, 0, device);
        var torn = new AtomicInteger();
        var start = new CountDownLatch(1);
        List<Future<?>> done = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
            boolean ports = t == 0;
            int seed = t;
            done.add(threads.submit(() -> {
                start.await();
                for (int i = 0; i < 2000; i++) {
                    long value = ((i * 2 + seed) & 0xFF) * 0x0101_0101L;
                    long read;
                    if (ports) {
                        pio.write(PciBus.CONFIG_ADDRESS, 4, address(5, 0, register));
                        pio.write(PciBus.CONFIG_DATA, 4, value);
                        read = pio.read(PciBus.CONFIG_DATA, 4);
                    } else {
                        ecam.write(ecamOffset(5, 0, register), 4, value);
                        read = ecam.read(ecamOffset(5, 0, register), 4);
                    }
                    if (!oneWrite(read)) {
                        torn.incrementAndGet();
                    }
                }
                return null;
            }));
        }
        start.countDown();
        for (Future<?> f : done) {
            f.get(60, TimeUnit.SECONDS);
        }
        assertEquals(0, torn.get(), "reads that mix bytes of two writes");
    }

    @Test
    void sameFunctionFromTwoThreadsIsSerialized() throws Exception {
        hammer(new UnguardedDevice(), 0x40);
    }

    @Test
    void sameEmulatedFunctionFromTwoThreadsIsConsistent() throws Exception {
        var f = new PciFunction("scratch", new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(0x1AF4, 0x1234, 0, 0x0000FF, 0, 0);
        f.config().setWritable(0x40, 4, 0xFFFFFFFF);
        hammer(f, 0x40);
    }

}
