package dev.panamax.vmm;

import dev.panamax.vmm.api.VmControl.ControlException;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link VcpuPause} with threads standing in for vCPU threads: each "runs" (spins) until its stop flag is set, then
 * parks, as {@code Machine.runPausable} does with {@code KvmVcpu.run}.
 */
class VcpuPauseTest {
    /** A stand-in vCPU thread: runs until stopped, parks, counts its runs. */
    private static final class FakeVcpu {
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger runs = new AtomicInteger();
        volatile boolean ended;

        Thread start(VcpuPause pause) {
            Thread t = Thread.ofPlatform().daemon().start(() -> {
                do {
                    runs.incrementAndGet();
                    while (!stop.get()) {
                        Thread.onSpinWait();
                    }
                } while (pause.park(() -> stop.set(false)));
                ended = true;
            });
            return t;
        }
    }

    private static List<FakeVcpu> vcpus(int n) {
        List<FakeVcpu> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add(new FakeVcpu());
        }
        return l;
    }

    @Test
    void pauseWaitsForEveryVcpuAndResumeRunsThemAgain() throws Exception {
        List<FakeVcpu> v = vcpus(3);
        VcpuPause pause = new VcpuPause(3, () -> v.forEach(f -> f.stop.set(true)));
        List<Thread> threads = new ArrayList<>();
        v.forEach(f -> threads.add(f.start(pause)));
        pause.pause();
        assertTrue(pause.paused());
        for (FakeVcpu f : v) {
            assertTrue(f.stop.get(), "a vCPU counted as parked still runs");
        }
        pause.pause(); // idempotent
        pause.resume();
        assertFalse(pause.paused());
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (v.stream().anyMatch(f -> f.runs.get() < 2) && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        v.forEach(f -> assertEquals(2, f.runs.get()));
        pause.close();
        v.forEach(f -> f.stop.set(true)); // the machine's end: close, then stop requests
        for (Thread t : threads) {
            t.join(5000);
            assertFalse(t.isAlive());
        }
        v.forEach(f -> assertTrue(f.ended));
        assertThrows(ControlException.class, pause::pause);
    }

    @Test
    void aVcpuThatDoesNotStopFailsThePauseAndTheOthersRunOn() throws Exception {
        List<FakeVcpu> v = vcpus(2);
        // The second never gets its stop request: it stands for a vCPU stuck in a device model.
        VcpuPause pause = new VcpuPause(2, () -> v.getFirst().stop.set(true));
        v.forEach(f -> f.start(pause));
        long t0 = System.nanoTime();
        ControlException e = assertThrows(ControlException.class, pause::pause);
        assertTrue(e.getMessage().contains("1 of 2 vCPUs did not stop"), e.getMessage());
        assertTrue(System.nanoTime() - t0 >= VcpuPause.PAUSE_TIMEOUT_MS * 900_000L);
        assertFalse(pause.paused());
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (v.getFirst().runs.get() < 2 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertEquals(2, v.getFirst().runs.get(), "the vCPU that stopped was not resumed");
        pause.close();
        v.forEach(f -> f.stop.set(true));
    }

    @Test
    void closeReleasesParkedThreadsForGood() throws Exception {
        List<FakeVcpu> v = vcpus(1);
        VcpuPause pause = new VcpuPause(1, () -> v.getFirst().stop.set(true));
        Thread t = v.getFirst().start(pause);
        pause.pause();
        pause.close();
        t.join(5000);
        assertFalse(t.isAlive());
        assertTrue(v.getFirst().ended);
        assertEquals(1, v.getFirst().runs.get());
    }
}
