package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec.IrqSet;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedFds;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec.*;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The device's interrupts: the eventfds the client gave with DEVICE_SET_IRQS (spec,
 * "VFIO_USER_DEVICE_SET_IRQS"), one per vfio IRQ index and vector, and the INTx mask.
 * The device calls {@link #trigger}; the server thread changes the eventfds. Thread-safe.
 */
public final class DeviceIrqs {
    private final VfioUserDevice device;
    /** eventfds[index][vector], -1 where none is assigned; owned here. */
    private final int[][] eventfds = new int[VfioUserDevice.NUM_IRQS][];
    private final boolean[][] masked = new boolean[VfioUserDevice.NUM_IRQS][];
    private final boolean[][] pending = new boolean[VfioUserDevice.NUM_IRQS][];
    private final MemorySegment one = Arena.ofAuto().allocate(JAVA_LONG);

    DeviceIrqs(VfioUserDevice device) {
        this.device = device;
        for (int i = 0; i < VfioUserDevice.NUM_IRQS; i++) {
            eventfds[i] = new int[device.irqCount(i)];
            java.util.Arrays.fill(eventfds[i], -1);
            masked[i] = new boolean[device.irqCount(i)];
            pending[i] = new boolean[device.irqCount(i)];
        }
        one.set(JAVA_LONG, 0, 1L);
    }

    /**
     * Signals interrupt {@code vector} of vfio IRQ index {@code index}: adds 1 to the client's
     * eventfd. A masked INTx is remembered as pending and signalled on unmask.
     *
     * @return true when an eventfd was signalled, false when none is assigned or the vector is masked
     * @throws IllegalArgumentException for an index or vector the device does not have
     */
    public synchronized boolean trigger(int index, int vector) {
        checkVector(index, vector);
        if (masked[index][vector]) {
            pending[index][vector] = true;
            return false;
        }
        return signal(index, vector);
    }

    /** @return true when the client has given an eventfd for this interrupt */
    public synchronized boolean assigned(int index, int vector) {
        checkVector(index, vector);
        return eventfds[index][vector] >= 0;
    }

    /** @return true while the client has the interrupt masked (ACTION_MASK) */
    public synchronized boolean masked(int index, int vector) {
        checkVector(index, vector);
        return masked[index][vector];
    }

    private boolean signal(int index, int vector) {
        int fd = eventfds[index][vector];
        if (fd < 0) {
            return false;
        }
        long r = Libc.writeRaw(fd, one);
        if (r < 0) {
            throw new LinuxException("write eventfd of IRQ index " + index + " vector " + vector, (int) -r);
        }
        return true;
    }

    private void checkVector(int index, int vector) {
        if (index < 0 || index >= VfioUserDevice.NUM_IRQS || vector < 0 || vector >= eventfds[index].length) {
            throw new IllegalArgumentException("IRQ index " + index + " vector " + vector + " is not one the device declared");
        }
    }

    /**
     * Applies a DEVICE_SET_IRQS request, taking the eventfds it came with.
     *
     * @throws VfioUserProtocolException EINVAL for an index or range the device does not have, or an action it does not support
     */
    synchronized void set(IrqSet s, ReceivedFds fds) {
        DeviceSetIrqsCodec.checkFds(s, fds.count());
        int count = device.irqCount(s.index());
        if (count == 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: the device has no interrupts of index " + s.index());
        }
        int index = (int) s.index();
        int data = s.flags() & DATA_MASK;
        int action = s.flags() & ACTION_MASK;
        if (data == VFIO_IRQ_SET_DATA_NONE && s.start() == 0 && s.count() == 0) {
            // "a count (and start) of 0, with data flags of VFIO_IRQ_SET_DATA_NONE disables all interrupts of the index"
            if (action == VFIO_IRQ_SET_ACTION_TRIGGER) {
                for (int v = 0; v < count; v++) {
                    replace(index, v, -1);
                }
            }
            return;
        }
        if (s.start() + s.count() > count) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS index " + index + " vectors " + s.start()
                    + "+" + s.count() + " exceed the " + count + " the device has");
        }
        byte[] bools = s.data();
        for (int i = 0; i < s.count(); i++) {
            int v = (int) s.start() + i;
            boolean act = data != VFIO_IRQ_SET_DATA_BOOL || bools[i] != 0;
            switch (action) {
                case VFIO_IRQ_SET_ACTION_TRIGGER -> {
                    if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
                        // "If no file descriptors are provided, this de-assigns the specified previously configured interrupts."
                        replace(index, v, fds.count() == 0 ? -1 : fds.take(i));
                    } else if (act) {
                        // DATA_NONE / DATA_BOOL: the client triggers the interrupt (loopback).
                        trigger(index, v);
                    }
                }
                case VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK -> {
                    if (index != VfioUserDevice.IRQ_INTX || data == VFIO_IRQ_SET_DATA_EVENTFD) {
                        throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: mask and unmask are supported for INTx"
                                + " with DATA_NONE or DATA_BOOL only, not index " + index + " flags 0x" + Integer.toHexString(s.flags()));
                    }
                    if (act) {
                        masked[index][v] = action == VFIO_IRQ_SET_ACTION_MASK;
                        if (!masked[index][v] && pending[index][v]) {
                            pending[index][v] = false;
                            signal(index, v);
                        }
                    }
                }
                default -> throw new IllegalStateException("the codec let through action 0x" + Integer.toHexString(action));
            }
        }
    }

    /** Closes every eventfd (the client is gone) and clears the masks. */
    synchronized void closeAll() {
        for (int i = 0; i < VfioUserDevice.NUM_IRQS; i++) {
            for (int v = 0; v < eventfds[i].length; v++) {
                replace(i, v, -1);
                masked[i][v] = false;
                pending[i][v] = false;
            }
        }
    }

    private void replace(int index, int vector, int fd) {
        int old = eventfds[index][vector];
        eventfds[index][vector] = fd;
        if (old >= 0) {
            Libc.close(old);
        }
    }
}
