package dev.panamax.core.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * An {@code eventfd(2)}: a 64-bit counter in the kernel that one side increments and the other
 * reads. Panamax hands these to the kernel so interrupts skip Java: a device (VFIO, vfio-user)
 * signals it and KVM injects the bound GSI ({@code KVM_IRQFD}).
 */
public final class EventFd implements AutoCloseable {
    private final int fd;
    private final MemorySegment buffer = Arena.ofAuto().allocate(JAVA_LONG);
    private boolean closed;

    /** Creates a close-on-exec eventfd with counter 0; {@code nonBlocking} adds EFD_NONBLOCK. */
    public EventFd(boolean nonBlocking) {
        this.fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | (nonBlocking ? Libc.EFD_NONBLOCK : 0));
    }

    /** @return the file descriptor (owned by this object) */
    public int fd() {
        return fd;
    }

    /** Adds 1 to the counter (wakes a reader). */
    public synchronized void signal() {
        buffer.set(JAVA_LONG, 0, 1L);
        long r = Libc.writeRaw(fd, buffer);
        if (r < 0) {
            throw new LinuxException("write eventfd", (int) -r);
        }
    }

    /**
     * Reads and resets the counter.
     *
     * @return the counter's value, or 0 if it was 0 and the eventfd is non-blocking
     */
    public synchronized long read() {
        long r = Libc.readRaw(fd, buffer);
        if (r == -Errno.EAGAIN) {
            return 0;
        }
        if (r < 0) {
            throw new LinuxException("read eventfd", (int) -r);
        }
        return buffer.get(JAVA_LONG, 0);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.close(fd);
        }
    }
}
