package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.transport.SocketLibc;
import io.netty.buffer.ByteBuf;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The server's side of its device's ioeventfds ({@link VfioUserDevice.IoEventFd}): one non-blocking eventfd per
 * declared doorbell, created with the server and owned by it (the client gets duplicates by SCM_RIGHTS, so whatever
 * the client does with its copies, closing them included, leaves these open), and one thread,
 * {@code vfio-user-ioeventfd}, that polls them all and calls the region's {@link RegionHandler#write} once per
 * wake-up of a signalled eventfd (the counter coalesces doorbells rung before the thread read it, as a doorbell
 * register would). A handler that throws is logged and the thread goes on. {@link #close} stops the thread (a stop
 * eventfd wakes it) and closes every eventfd.
 */
final class IoEventFdPoller implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(IoEventFdPoller.class);

    private record Watched(VfioUserDevice.IoEventFd declared, RegionHandler handler, EventFd eventFd) {
    }

    private final List<Watched> watched = new ArrayList<>();
    private final EventFd stop;
    private Thread thread;
    private boolean closed;

    /**
     * Creates the eventfds of every ioeventfd {@code device} declares (none: no fds, no thread).
     *
     * @throws dev.panamax.core.sys.LinuxException when an eventfd cannot be made (those made are closed)
     */
    IoEventFdPoller(VfioUserDevice device) {
        EventFd stopFd = null;
        try {
            for (VfioUserDevice.IoEventFd e : device.ioEventFds()) {
                RegionHandler h = device.region(e.region()).orElseThrow().handler();
                watched.add(new Watched(e, h, new EventFd(true)));
            }
            stopFd = watched.isEmpty() ? null : new EventFd(true);
        } catch (RuntimeException ex) {
            watched.forEach(w -> w.eventFd.close());
            throw ex;
        }
        stop = stopFd;
    }

    /** @return the eventfds of region {@code index}'s ioeventfds, in declaration order (owned by this object) */
    int[] fds(long index) {
        return watched.stream().filter(w -> w.declared.region() == index).mapToInt(w -> w.eventFd.fd()).toArray();
    }

    /**
     * Answers DEVICE_GET_REGION_IO_FDS for a region the device has: its declared ioeventfds, one sub-region of type
     * {@code VFIO_USER_IO_FD_TYPE_IOEVENTFD} and one fd each (fd_index i for the i-th), at most {@code maxFds} (the
     * client's {@code max_msg_fds}; the rest keep going by REGION_WRITE); an empty list for a region without any. When
     * the request's argsz is too small for the sub-regions, the reply is the fixed part with the argsz needed, no fd.
     *
     * @return the fds to send with the reply (owned by this object)
     */
    int[] reply(VfioUserDevice device, DeviceGetRegionIoFdsCodec.Request r, int maxFds, ByteBuf out) {
        List<VfioUserDevice.IoEventFd> declared = device.ioEventFds(r.index());
        int n = Math.min(declared.size(), maxFds);
        List<DeviceGetRegionIoFdsCodec.SubRegion> subs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            VfioUserDevice.IoEventFd e = declared.get(i);
            subs.add(new DeviceGetRegionIoFdsCodec.SubRegion(e.offset(), e.size(), i, vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD(),
                    e.datamatch().isPresent() ? VfioUserServer.KVM_IOEVENTFD_FLAG_DATAMATCH : 0, e.datamatch().orElse(0)));
        }
        DeviceGetRegionIoFdsCodec.Reply reply = DeviceGetRegionIoFdsCodec.Reply.of(r.index(), subs);
        DeviceGetRegionIoFdsCodec.encodeReply(reply, r.argsz(), out);
        return reply.argsz() <= r.argsz() ? Arrays.copyOf(fds(r.index()), n) : new int[0];
    }

    /**
     * Starts the polling thread, if there is anything to poll.
     *
     * @param onError run once, on the polling thread, when it fails with an {@link Error} from the device model (its
     *                state is unknown; the server drops the client): after one ERROR line, never silently
     */
    synchronized void start(Runnable onError) {
        if (stop != null && thread == null && !closed) {
            thread = Thread.ofPlatform().name("vfio-user-ioeventfd").daemon().start(() -> {
                try {
                    pollLoop();
                } catch (Throwable e) {
                    // Issue 15, defect 9: a doorbell KVM swallows with nobody reading it would hang the guest.
                    LOG.error("vfio-user client dropped: the ioeventfd thread failed: {}", e.toString());
                    onError.run();
                }
            });
        }
    }

    private void pollLoop() {
        int n = watched.size();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfds = arena.allocate(SocketLibc.POLLFD_SIZE * (n + 1), 8);
            MemorySegment value = arena.allocate(JAVA_LONG);
            for (int i = 0; i <= n; i++) {
                pfds.set(JAVA_INT, i * SocketLibc.POLLFD_SIZE, i < n ? watched.get(i).eventFd.fd() : stop.fd());
                pfds.set(JAVA_SHORT, i * SocketLibc.POLLFD_SIZE + 4, SocketLibc.POLLIN);
            }
            while (true) {
                for (int i = 0; i <= n; i++) {
                    pfds.set(JAVA_SHORT, i * SocketLibc.POLLFD_SIZE + 6, (short) 0);
                }
                int r = SocketLibc.pollRaw(pfds, n + 1, -1);
                if (r == -Errno.EINTR) {
                    continue;
                }
                if (r < 0) {
                    LOG.error("vfio-user ioeventfds: poll failed ({}); doorbells now go by REGION_WRITE only", Libc.strerror(-r));
                    return;
                }
                if (pfds.get(JAVA_SHORT, n * SocketLibc.POLLFD_SIZE + 6) != 0) {
                    return; // close()
                }
                for (int i = 0; i < n; i++) {
                    long at = i * SocketLibc.POLLFD_SIZE;
                    short revents = pfds.get(JAVA_SHORT, at + 6);
                    if (revents == 0) {
                        continue;
                    }
                    Watched w = watched.get(i);
                    long got = (revents & SocketLibc.POLLIN) != 0 ? Libc.readRaw(w.eventFd.fd(), value) : 0;
                    if (got == 8) {
                        ring(w);
                    } else if (got != -Errno.EAGAIN && got != -Errno.EINTR) {
                        // Cannot happen to an eventfd we own, but must not spin: stop watching this one.
                        LOG.error("vfio-user ioeventfd {}: poll events 0x{}, read {}; no longer watched", w.declared,
                                Integer.toHexString(revents), got);
                        pfds.set(JAVA_INT, at, -1);
                    }
                }
            }
        }
    }

    private static void ring(Watched w) {
        try {
            w.handler.write(w.declared.offset(), w.declared.written());
        } catch (RuntimeException e) {
            LOG.warn("vfio-user ioeventfd {}: the device failed: {}", w.declared, e.toString());
        }
    }

    /** Stops the thread, waits for it, closes the eventfds. Idempotent. */
    @Override
    public void close() {
        Thread t;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            t = thread;
        }
        if (t != null) {
            stop.signal();
            if (t == Thread.currentThread()) {
                t = null; // a handler closing its own server: the loop ends at its next poll
            }
        }
        if (t != null) {
            boolean interrupted = false;
            while (t.isAlive()) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
        watched.forEach(w -> w.eventFd.close());
        if (stop != null) {
            stop.close();
        }
    }
}
