package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec.IrqSet;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedFds;
import dev.panamax.vfiouser.transport.SocketLibc;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.panamax.vfio.bindings.vfio_h.*;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The device's interrupts: the eventfds the client gave with DEVICE_SET_IRQS (spec,
 * "VFIO_USER_DEVICE_SET_IRQS"), one per vfio IRQ index and vector, and the INTx mask.
 * The device calls {@link #trigger} (MSI, MSI-X, or one INTx assertion) or {@link #intx} (the INTx# level);
 * the server thread changes the eventfds. Thread-safe.
 *
 * <p>INTx behaves as vfio-pci's does (its IRQ info says {@code VFIO_IRQ_INFO_AUTOMASKED}): each time the line
 * is signalled it masks itself, and the client unmasks it (ACTION_UNMASK), typically through an unmask eventfd
 * (ACTION_UNMASK with DATA_EVENTFD) that KVM signals when the guest EOIs the interrupt (the irqfd's resample
 * eventfd). On unmask, a line still asserted (or an assertion that came while masked) is signalled again, so no
 * interrupt is lost between the guest's handler and its EOI.
 *
 * <p>A hostile client: every fd of DEVICE_SET_IRQS must be an eventfd ({@code /proc/self/fdinfo} shows
 * {@code eventfd-count}), else the request is refused with EINVAL and nothing of it applied. The server sets
 * {@code O_NONBLOCK} on each (the flag is on the open file description, so the client's copy is non-blocking too;
 * KVM's irqfd does not care): a signal of an eventfd whose counter is saturated (EAGAIN) is dropped, the interrupt
 * being pending already, so no write can block while this object's monitor is held. An unmask fd that reports
 * POLLHUP, POLLERR, POLLNVAL or end of file is no longer watched, with one line in the log.
 */
public final class DeviceIrqs {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceIrqs.class);
    private final VfioUserDevice device;
    /** eventfds[index][vector], -1 where none is assigned; owned here. */
    private final int[][] eventfds = new int[vfio_h.VFIO_PCI_NUM_IRQS()][];
    private final boolean[][] masked = new boolean[vfio_h.VFIO_PCI_NUM_IRQS()][];
    private final boolean[][] pending = new boolean[vfio_h.VFIO_PCI_NUM_IRQS()][];
    private final MemorySegment one = Arena.ofAuto().allocate(JAVA_LONG);
    /** The INTx# level the device drives ({@link #intx}). */
    private boolean intxLevel;
    /** The INTx unmask eventfd and the thread that waits on it, or -1 and null. */
    private int unmaskFd = -1;
    private Thread unmaskWatcher;

    DeviceIrqs(VfioUserDevice device) {
        this.device = device;
        for (int i = 0; i < vfio_h.VFIO_PCI_NUM_IRQS(); i++) {
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
        if (index == vfio_h.VFIO_PCI_INTX_IRQ_INDEX()) {
            masked[index][vector] = true; // automasked until the client unmasks (the guest's EOI)
        }
        return signal(index, vector);
    }

    /**
     * Drives the device's INTx# pin, a level (PCI 3.0, 2.2.6): raising it signals the INTx eventfd unless INTx is
     * masked; while it stays high, every unmask signals it again. Lower it when the cause is gone (for virtio,
     * when the driver has read ISR).
     *
     * @throws IllegalArgumentException if the device declared no INTx
     */
    public synchronized void intx(boolean level) {
        checkVector(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0);
        boolean rising = level && !intxLevel;
        intxLevel = level;
        if (!level) {
            pending[vfio_h.VFIO_PCI_INTX_IRQ_INDEX()][0] = false;
        } else if (rising) {
            trigger(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0);
        }
    }

    /** Unmasks INTx: signals it again if it was asserted meanwhile or is still high. */
    private synchronized void unmaskIntx() {
        int i = vfio_h.VFIO_PCI_INTX_IRQ_INDEX();
        masked[i][0] = false;
        if (pending[i][0] || intxLevel) {
            pending[i][0] = false;
            trigger(i, 0);
        }
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
        long r = Libc.writeRaw(fd, one); // non-blocking (checkEventfds): never waits on the client
        if (r == -Errno.EAGAIN) {
            return true; // the counter is saturated: the client has yet to read the interrupts already pending
        }
        if (r < 0) {
            throw new LinuxException("write eventfd of IRQ index " + index + " vector " + vector, (int) -r);
        }
        return true;
    }

    private void checkVector(int index, int vector) {
        if (index < 0 || index >= vfio_h.VFIO_PCI_NUM_IRQS() || vector < 0 || vector >= eventfds[index].length) {
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
        checkEventfds(fds);
        int count = device.irqCount(s.index());
        if (count == 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: the device has no interrupts of index " + s.index());
        }
        int index = (int) s.index();
        int data = s.flags() & VFIO_IRQ_SET_DATA_TYPE_MASK();
        int action = s.flags() & VFIO_IRQ_SET_ACTION_TYPE_MASK();
        if (data == VFIO_IRQ_SET_DATA_NONE() && s.start() == 0 && s.count() == 0) {
            // "a count (and start) of 0, with data flags of VFIO_IRQ_SET_DATA_NONE disables all interrupts of the index"
            if (action == VFIO_IRQ_SET_ACTION_TRIGGER()) {
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
            boolean act = data != VFIO_IRQ_SET_DATA_BOOL() || bools[i] != 0;
            if (action == VFIO_IRQ_SET_ACTION_TRIGGER()) {
                if (data == VFIO_IRQ_SET_DATA_EVENTFD()) {
                    // "If no file descriptors are provided, this de-assigns the specified previously configured interrupts."
                    replace(index, v, fds.count() == 0 ? -1 : fds.take(i));
                } else if (act) {
                    // DATA_NONE / DATA_BOOL: the client triggers the interrupt (loopback).
                    trigger(index, v);
                }
            } else if (action == VFIO_IRQ_SET_ACTION_MASK() || action == VFIO_IRQ_SET_ACTION_UNMASK()) {
                boolean unmaskFd = action == VFIO_IRQ_SET_ACTION_UNMASK() && data == VFIO_IRQ_SET_DATA_EVENTFD();
                if (index != vfio_h.VFIO_PCI_INTX_IRQ_INDEX() || (data == VFIO_IRQ_SET_DATA_EVENTFD() && !unmaskFd)) {
                    throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: mask and unmask are supported for INTx"
                            + " only, and an eventfd only to unmask, not index " + index + " flags 0x" + Integer.toHexString(s.flags()));
                }
                if (unmaskFd) {
                    // "the file descriptor ... when signaled, unmasks the interrupt" (vfio.h, VFIO_DEVICE_SET_IRQS)
                    watchUnmask(fds.count() == 0 ? -1 : fds.take(i));
                } else if (act) {
                    if (action == VFIO_IRQ_SET_ACTION_MASK()) {
                        masked[index][v] = true;
                    } else {
                        unmaskIntx();
                    }
                }
            } else {
                throw new IllegalStateException("the codec let through action 0x" + Integer.toHexString(action));
            }
        }
    }

    /**
     * Checks that every fd of a DEVICE_SET_IRQS request is an eventfd and makes it non-blocking, before any of the
     * request is applied.
     *
     * @throws VfioUserProtocolException EINVAL naming the first fd that is not an eventfd
     */
    private static void checkEventfds(ReceivedFds fds) {
        for (int i = 0; i < fds.count(); i++) {
            int fd = fds.peek(i);
            if (!isEventfd(fd)) {
                throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: fd " + i + " of the request is no eventfd ("
                        + describeFd(fd) + ")");
            }
            try {
                Libc.setNonBlocking(fd);
            } catch (LinuxException e) {
                throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_SET_IRQS: fd " + i + ": " + e.getMessage());
            }
        }
    }

    /** @return true when {@code fd} is an eventfd: its {@code /proc/self/fdinfo} entry has an {@code eventfd-count} line (eventfd(2)) */
    static boolean isEventfd(int fd) {
        try {
            return Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd)).stream().anyMatch(l -> l.startsWith("eventfd-count:"));
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    private static String describeFd(int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
        } catch (IOException | RuntimeException e) {
            return "unknown kind";
        }
    }

    /** Replaces the INTx unmask eventfd (-1: none) and its watcher thread. */
    private void watchUnmask(int fd) {
        stopUnmaskWatcher();
        if (fd < 0) {
            return;
        }
        unmaskFd = fd;
        unmaskWatcher = startUnmaskWatcher(fd, this::unmaskIntx);
    }

    /**
     * Starts the thread that calls {@code unmask} on each signal of {@code fd} ({@link #awaitUnmask}); whatever
     * {@code unmask} throws ends the watching with one line.
     */
    static Thread startUnmaskWatcher(int fd, Runnable unmask) {
        return Thread.ofPlatform().daemon().name("vfio-user-intx-unmask").start(() -> {
            try {
                awaitUnmask(fd, unmask);
            } catch (Throwable e) {
                // The device's unmask failed, an Error included: one line, and INTx stays masked (issue 15, defect 9).
                LOG.error("vfio-user INTx unmask fd {}: {}; no longer watched", fd, e.toString());
            }
        });
    }

    /**
     * The watcher: each signal of the unmask eventfd unmasks INTx, until the thread is interrupted (the fd replaced
     * or closed), or the fd hangs up, fails or reaches end of file: then it logs one line and stops watching (it
     * would otherwise poll ready at once, forever).
     */
    static void awaitUnmask(int fd, Runnable unmask) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfd = arena.allocate(SocketLibc.POLLFD_SIZE, 8);
            MemorySegment value = arena.allocate(JAVA_LONG);
            while (!Thread.currentThread().isInterrupted()) {
                pfd.set(java.lang.foreign.ValueLayout.JAVA_INT, 0, fd);
                pfd.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 4, SocketLibc.POLLIN);
                pfd.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 6, (short) 0);
                int r = SocketLibc.pollRaw(pfd, 1, 100);
                if (r < 0 && r != -Errno.EINTR) {
                    LOG.warn("vfio-user INTx unmask fd {}: poll failed ({}); no longer watched", fd, Libc.strerror(-r));
                    return;
                }
                if (r <= 0) {
                    continue;
                }
                short revents = pfd.get(java.lang.foreign.ValueLayout.JAVA_SHORT, 6);
                if ((revents & SocketLibc.POLLNVAL) != 0) {
                    LOG.warn("vfio-user INTx unmask fd {}: not open (POLLNVAL); no longer watched", fd);
                    return;
                }
                long n = (revents & SocketLibc.POLLIN) != 0 ? Libc.readRaw(fd, value) : 0;
                if (n == 8) {
                    unmask.run();
                } else if (n == -Errno.EAGAIN || n == -Errno.EINTR) {
                    continue; // someone else read the counter first
                } else if (n != 0 || (revents & (SocketLibc.POLLHUP | SocketLibc.POLLERR)) != 0 || (revents & SocketLibc.POLLIN) != 0) {
                    LOG.warn("vfio-user INTx unmask fd {}: {}; no longer watched", fd, n < 0 ? "read failed ("
                            + Libc.strerror((int) -n) + ")" : n > 0 ? "a short read of " + n + " bytes"
                            : (revents & SocketLibc.POLLIN) != 0 ? "end of file" : "hung up (poll events 0x" + Integer.toHexString(revents) + ")");
                    return;
                }
            }
        }
    }

    private void stopUnmaskWatcher() {
        if (unmaskWatcher != null) {
            unmaskWatcher.interrupt();
            boolean interrupted = false;
            while (true) {
                try {
                    // The watcher wakes within its poll timeout (100 ms); it takes this lock only to unmask.
                    wait(10);
                    unmaskWatcher.join(10);
                    if (!unmaskWatcher.isAlive()) {
                        break;
                    }
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
            unmaskWatcher = null;
        }
        if (unmaskFd >= 0) {
            Libc.close(unmaskFd);
            unmaskFd = -1;
        }
    }

    /** Closes every eventfd (the client is gone) and clears the masks. */
    synchronized void closeAll() {
        stopUnmaskWatcher();
        intxLevel = false;
        for (int i = 0; i < vfio_h.VFIO_PCI_NUM_IRQS(); i++) {
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
