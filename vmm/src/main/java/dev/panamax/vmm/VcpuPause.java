package dev.panamax.vmm;

import dev.panamax.kvm.KvmVcpu;
import dev.panamax.vmm.api.VmControl.ControlException;

import java.util.List;

/**
 * Pausing and resuming a running machine's vCPUs (the control socket's {@code pause}, {@code resume}, and every
 * {@code snapshot}). Pausing asks each vCPU to stop ({@link KvmVcpu#requestStop()}: it leaves {@code KVM_RUN} with
 * its port or MMIO access completed) and waits until every vCPU thread is parked here; resuming lets them run again.
 * The machine's end ({@link #close()}) releases parked threads for good.
 *
 * <p>A vCPU thread runs {@code do run while park}: {@link #park} returns whether to run again, having cleared the
 * vCPU's stop request ({@link KvmVcpu#clearStop()}).
 */
final class VcpuPause {
    /** How long {@link #pause} waits for every vCPU to stop, milliseconds. */
    static final long PAUSE_TIMEOUT_MS = 5000;

    /** How many vCPU threads park when paused. */
    private final int count;
    /** Asks every vCPU to stop ({@link KvmVcpu#requestStop()} of each). */
    private final Runnable requestStops;
    private int parked;
    private boolean paused;
    private boolean closing;

    VcpuPause(List<KvmVcpu> vcpus) {
        this(vcpus.size(), () -> vcpus.forEach(KvmVcpu::requestStop));
    }

    /** @param requestStops asks each of the {@code count} vCPUs to stop; {@link #park} clears each one's request */
    VcpuPause(int count, Runnable requestStops) {
        this.count = count;
        this.requestStops = requestStops;
    }

    /** @return whether the vCPUs are paused (or being paused) */
    synchronized boolean paused() {
        return paused;
    }

    /**
     * Stops every vCPU and returns once all are parked.
     *
     * @throws ControlException if the machine is ending, or a vCPU did not stop within {@value #PAUSE_TIMEOUT_MS} ms
     *                          (the others are resumed)
     */
    synchronized void pause() {
        if (closing) {
            throw new ControlException("the VM is stopping");
        }
        if (!paused) {
            paused = true;
            requestStops.run();
        }
        long deadline = System.nanoTime() + PAUSE_TIMEOUT_MS * 1_000_000;
        while (parked < count && !closing) {
            long left = (deadline - System.nanoTime()) / 1_000_000;
            if (left <= 0) {
                resume();
                throw new ControlException((count - parked) + " of " + count
                        + " vCPUs did not stop within " + PAUSE_TIMEOUT_MS + " ms; the VM runs on");
            }
            try {
                wait(left);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                resume();
                throw new ControlException("interrupted while pausing");
            }
        }
        if (closing) {
            throw new ControlException("the VM is stopping");
        }
    }

    /** Lets the parked vCPUs run again (nothing if not paused). */
    synchronized void resume() {
        paused = false;
        notifyAll();
    }

    /**
     * On a vCPU thread whose {@code run} returned {@code STOPPED}: waits while the machine is paused.
     *
     * @return true to run the vCPU again (its stop request cleared), false when the machine is ending
     */
    synchronized boolean park(Runnable clearStop) {
        parked++;
        notifyAll();
        try {
            while (paused && !closing) {
                wait();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        } finally {
            parked--;
        }
        if (closing) {
            return false;
        }
        clearStop.run(); // under the lock: close() then requestStop() cannot be lost
        return true;
    }

    /** The machine ends: parked threads return false from {@link #park}, and {@link #pause} refuses. */
    synchronized void close() {
        closing = true;
        notifyAll();
    }
}
