package dev.panamax.vfiouser.transport;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * An {@code AF_UNIX} {@code SOCK_STREAM} socket (close-on-exec), through FFM: listen on a path,
 * accept, connect, socketpair, and {@code sendmsg}/{@code recvmsg} with file descriptors passed as
 * {@code SCM_RIGHTS} control messages (unix(7), cmsg(3)). The vfio-user transport (spec, "Socket").
 *
 * <p>Closing is safe while other threads are inside a call on the socket (a vCPU waiting for a reply at shutdown):
 * {@link #close} shuts the socket down ({@code shutdown(2)}, which wakes a blocked {@code recvmsg}/{@code poll}/
 * {@code accept}; a {@code close(2)} alone does not) and the fd itself is closed by the last call to return, so that
 * its number cannot be reused by another open in this process while a call still uses it. Calls after close fail
 * with EBADF without touching the number.
 */
public final class UnixSocket implements AutoCloseable {
    /** The socket file's mode: 0600. */
    private static final java.util.Set<java.nio.file.attribute.PosixFilePermission> SOCKET_MODE =
            java.nio.file.attribute.PosixFilePermissions.fromString("rw-------");
    private final int fd;
    private final String name;
    /** Guarded by this: close was called; calls in flight; the fd was closed (by close or the last release). */
    private boolean closed;
    private int users;
    private boolean fdClosed;

    private UnixSocket(int fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    /** @return two connected sockets (socketpair(2)), e.g. one per process side of a fork, or for tests */
    public static UnixSocket[] pair() {
        int[] sv = SocketLibc.socketpair(SocketLibc.AF_UNIX, SocketLibc.SOCK_STREAM | SocketLibc.SOCK_CLOEXEC, 0);
        return new UnixSocket[] {new UnixSocket(sv[0], "socketpair[0]"), new UnixSocket(sv[1], "socketpair[1]")};
    }

    /**
     * Creates a socket bound to {@code path} and listening. The file must not exist; it is made with mode 0600
     * (owner read/write only, whatever the umask), so that only our uid (and root) can connect.
     *
     * @throws LinuxException e.g. EEXIST when the path exists, ENOENT when its directory does not
     * @throws IllegalArgumentException when the path is longer than 105 bytes (the socket is bound first under a
     *                                  name 2 bytes longer, {@code .~NAME} beside it, then linked into place)
     */
    public static UnixSocket listen(Path path, int backlog) {
        // Bound, chmod'ed and listening under a temporary name beside the final one, then linked into place
        // (link(2) is atomic, and fails with EEXIST rather than replace a file): a client that waits for the file
        // to appear never finds a socket that refuses it (between bind and listen) or one with the umask's mode.
        Path temporary = path.resolveSibling(".~" + path.getFileName());
        int fd = SocketLibc.socket(SocketLibc.AF_UNIX, SocketLibc.SOCK_STREAM | SocketLibc.SOCK_CLOEXEC, 0);
        try (Arena arena = Arena.ofConfined()) {
            deleteQuietly(temporary);
            SocketLibc.bind(fd, SocketLibc.sockaddrUn(arena, temporary.toString()), temporary.toString());
            try {
                java.nio.file.Files.setPosixFilePermissions(temporary, SOCKET_MODE);
                SocketLibc.listen(fd, backlog);
                java.nio.file.Files.createLink(path, temporary);
                deleteQuietly(temporary);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                deleteQuietly(temporary);
                throw new LinuxException("socket " + path + ": the file exists", Errno.EEXIST);
            } catch (java.io.IOException | UnsupportedOperationException e) {
                deleteQuietly(temporary);
                throw new LinuxException("socket " + path + " (chmod 0600, link): " + e.getMessage(), Errno.EPERM);
            } catch (RuntimeException e) {
                deleteQuietly(temporary);
                throw e;
            }
            return new UnixSocket(fd, "listening on " + path);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /**
     * Connects to a listening socket at {@code path}.
     *
     * @throws LinuxException e.g. ENOENT (no such file), ECONNREFUSED (nobody listens)
     */
    public static UnixSocket connect(Path path) {
        int fd = SocketLibc.socket(SocketLibc.AF_UNIX, SocketLibc.SOCK_STREAM | SocketLibc.SOCK_CLOEXEC, 0);
        try (Arena arena = Arena.ofConfined()) {
            SocketLibc.connect(fd, SocketLibc.sockaddrUn(arena, path.toString()), path.toString());
            return new UnixSocket(fd, "connected to " + path);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /**
     * Waits for and accepts one connection on a listening socket.
     *
     * @param timeout null to wait forever
     * @throws ReceiveTimeoutException when nobody connects in time
     */
    public UnixSocket accept(Duration timeout) {
        if (!poll(SocketLibc.POLLIN, timeout)) {
            throw new ReceiveTimeoutException("no connection within " + timeout + " on socket " + name);
        }
        use();
        try {
            while (true) {
                int r = SocketLibc.accept4Raw(fd, SocketLibc.SOCK_CLOEXEC);
                if (r >= 0) {
                    return new UnixSocket(r, "accepted on " + name);
                }
                if (r != -Errno.EINTR) {
                    throw new LinuxException("accept4 on " + name, -r);
                }
            }
        } finally {
            release();
        }
    }

    private static void deleteQuietly(Path path) {
        try {
            java.nio.file.Files.deleteIfExists(path);
        } catch (java.io.IOException e) {
            // the caller's error says more
        }
    }

    /**
     * The connected peer's credentials, {@code SO_PEERCRED} (unix(7)): as of its {@code connect} (or socketpair).
     *
     * @throws LinuxException e.g. ENOTCONN, EBADF once closed
     */
    public PeerCredentials peerCredentials() {
        use();
        try {
            int[] c = SocketLibc.peerCredentials(fd);
            return new PeerCredentials(c[0], c[1], c[2]);
        } finally {
            release();
        }
    }

    /**
     * @return the socket's fd (owned by this object; after {@link #close} the number may belong to someone else once
     *         the calls in flight have returned)
     */
    public int fd() {
        return fd;
    }

    /**
     * Waits until {@code events} (POLLIN, POLLOUT) are ready; POLLHUP and POLLERR also count as
     * ready so that the next call reports them.
     *
     * @param timeout null to wait forever, else at least one millisecond is waited
     * @return false on timeout
     * @throws LinuxException EBADF once closed
     */
    public boolean poll(short events, Duration timeout) {
        long deadline = timeout == null ? Long.MAX_VALUE : System.nanoTime() + timeout.toNanos();
        use();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pfd = arena.allocate(SocketLibc.POLLFD_SIZE, 4);
            while (true) {
                pfd.set(JAVA_INT, 0, fd);
                pfd.set(JAVA_SHORT, 4, events);
                pfd.set(JAVA_SHORT, 6, (short) 0);
                int millis = -1;
                if (timeout != null) {
                    long left = deadline - System.nanoTime();
                    millis = (int) Math.min(Integer.MAX_VALUE, Math.max(0, (left + 999_999) / 1_000_000));
                }
                int r = SocketLibc.pollRaw(pfd, 1, millis);
                if (r == -Errno.EINTR) {
                    continue;
                }
                if (r < 0) {
                    throw new LinuxException("poll socket " + name, -r);
                }
                if (r > 0) {
                    if ((pfd.get(JAVA_SHORT, 6) & SocketLibc.POLLNVAL) != 0) {
                        throw new LinuxException("poll socket " + name, Errno.EBADF);
                    }
                    return true;
                }
                if (timeout != null && deadline - System.nanoTime() <= 0) {
                    return false;
                }
            }
        } finally {
            release();
        }
    }

    /**
     * One {@code sendmsg(2)} of {@code data} with {@code fds} as one SCM_RIGHTS control message
     * (MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE).
     *
     * @return bytes sent (maybe fewer than {@code data.byteSize()}; the fds went with the first byte), or {@code -errno}
     *         ({@code -EBADF} once closed)
     */
    public long sendRaw(MemorySegment data, int[] fds) {
        return sendRaw(data, fds, 0);
    }

    /**
     * As {@link #sendRaw(MemorySegment, int[])}, with more {@code sendmsg} flags, e.g. {@link SocketLibc#MSG_DONTWAIT}
     * (then EAGAIN when the socket's buffer is full).
     */
    public long sendRaw(MemorySegment data, int[] fds, int flags) {
        if (!acquire()) {
            return -Errno.EBADF;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iov = arena.allocate(SocketLibc.IOVEC_SIZE, 8);
            iov.set(JAVA_LONG, 0, data.address());
            iov.set(JAVA_LONG, 8, data.byteSize());
            MemorySegment msg = arena.allocate(SocketLibc.MSGHDR_SIZE, 8);
            msg.set(JAVA_LONG, SocketLibc.MSG_IOV, iov.address());
            msg.set(JAVA_LONG, SocketLibc.MSG_IOVLEN, 1);
            if (fds.length > 0) {
                long dataBytes = 4L * fds.length;
                MemorySegment control = arena.allocate(SocketLibc.cmsgSpace(dataBytes), 8);
                control.set(JAVA_LONG, SocketLibc.CMSG_LEN_OFFSET, SocketLibc.cmsgLen(dataBytes));
                control.set(JAVA_INT, SocketLibc.CMSG_LEVEL_OFFSET, SocketLibc.SOL_SOCKET);
                control.set(JAVA_INT, SocketLibc.CMSG_TYPE_OFFSET, SocketLibc.SCM_RIGHTS);
                for (int i = 0; i < fds.length; i++) {
                    control.set(JAVA_INT, SocketLibc.CMSGHDR_SIZE + 4L * i, fds[i]);
                }
                msg.set(JAVA_LONG, SocketLibc.MSG_CONTROL, control.address());
                msg.set(JAVA_LONG, SocketLibc.MSG_CONTROLLEN, control.byteSize());
            }
            return SocketLibc.sendmsgRaw(fd, msg, SocketLibc.MSG_NOSIGNAL | flags);
        } finally {
            release();
        }
    }

    /**
     * What one {@code recvmsg} gave.
     *
     * @param bytes            bytes read into the buffer, 0 at end of stream, or {@code -errno}
     * @param fds              the fds that came (now owned by the caller), close-on-exec
     * @param controlTruncated MSG_CTRUNC: more fds were sent than fit; the kernel closed the rest
     */
    public record Received(long bytes, int[] fds, boolean controlTruncated) {
    }

    /**
     * One {@code recvmsg(2)} into {@code buffer}, with room for up to {@link SocketLibc#SCM_MAX_FD}
     * fds (so that a peer sending too many is seen, not silently cut), MSG_CMSG_CLOEXEC. Once closed: {@code -EBADF};
     * a receive blocked when {@link #close} is called returns end of stream (0).
     */
    public Received receiveRaw(MemorySegment buffer) {
        if (!acquire()) {
            return new Received(-Errno.EBADF, new int[0], false);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iov = arena.allocate(SocketLibc.IOVEC_SIZE, 8);
            iov.set(JAVA_LONG, 0, buffer.address());
            iov.set(JAVA_LONG, 8, buffer.byteSize());
            long controlSize = SocketLibc.cmsgSpace(4L * SocketLibc.SCM_MAX_FD);
            MemorySegment control = arena.allocate(controlSize, 8);
            MemorySegment msg = arena.allocate(SocketLibc.MSGHDR_SIZE, 8);
            msg.set(JAVA_LONG, SocketLibc.MSG_IOV, iov.address());
            msg.set(JAVA_LONG, SocketLibc.MSG_IOVLEN, 1);
            msg.set(JAVA_LONG, SocketLibc.MSG_CONTROL, control.address());
            msg.set(JAVA_LONG, SocketLibc.MSG_CONTROLLEN, controlSize);
            long n = SocketLibc.recvmsgRaw(fd, msg, SocketLibc.MSG_CMSG_CLOEXEC);
            if (n < 0) {
                return new Received(n, new int[0], false);
            }
            int flags = msg.get(JAVA_INT, SocketLibc.MSG_FLAGS);
            long used = msg.get(JAVA_LONG, SocketLibc.MSG_CONTROLLEN);
            return new Received(n, fdsOf(control, used), (flags & SocketLibc.MSG_CTRUNC) != 0);
        } finally {
            release();
        }
    }

    /** Walks the control messages (CMSG_FIRSTHDR/CMSG_NXTHDR) and collects every SCM_RIGHTS fd. */
    private static int[] fdsOf(MemorySegment control, long used) {
        int[] out = new int[0];
        long at = 0;
        while (at + SocketLibc.CMSGHDR_SIZE <= used) {
            long len = control.get(JAVA_LONG, at + SocketLibc.CMSG_LEN_OFFSET);
            if (len < SocketLibc.CMSGHDR_SIZE || at + len > used) {
                break;
            }
            if (control.get(JAVA_INT, at + SocketLibc.CMSG_LEVEL_OFFSET) == SocketLibc.SOL_SOCKET
                    && control.get(JAVA_INT, at + SocketLibc.CMSG_TYPE_OFFSET) == SocketLibc.SCM_RIGHTS) {
                int n = (int) ((len - SocketLibc.cmsgLen(0)) / 4);
                int old = out.length;
                out = java.util.Arrays.copyOf(out, old + n);
                for (int i = 0; i < n; i++) {
                    out[old + i] = control.get(JAVA_INT, at + SocketLibc.CMSGHDR_SIZE + 4L * i);
                }
            }
            at += SocketLibc.cmsgAlign(len);
        }
        return out;
    }

    /**
     * Shuts both directions down: the peer sees end of stream, a blocked receive here returns.
     * Does nothing once closed (the fd number may belong to someone else by then).
     */
    public synchronized void shutdown() {
        if (!fdClosed) {
            SocketLibc.shutdownRaw(fd, SocketLibc.SHUT_RDWR);
        }
    }

    /**
     * Starts a call on the fd: until the matching {@link #release}, the fd stays open.
     *
     * @return false once closed (the caller must not touch the fd number)
     */
    synchronized boolean acquire() {
        if (closed) {
            return false;
        }
        users++;
        return true;
    }

    /** As {@link #acquire}, throwing EBADF once closed. */
    private void use() {
        if (!acquire()) {
            throw new LinuxException("socket " + name + " is closed", Errno.EBADF);
        }
    }

    /** Ends a call started by {@link #acquire}; the last one after {@link #close} closes the fd. */
    synchronized void release() {
        users--;
        if (closed && users == 0) {
            closeFd();
        }
    }

    private void closeFd() {
        if (!fdClosed) {
            fdClosed = true;
            Libc.close(fd);
        }
    }

    /**
     * Closes the socket: shuts it down at once (the peer sees end of stream, blocked calls here return) and closes the
     * fd now, or when the last call in flight returns.
     */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (users == 0) {
                closeFd();
            } else {
                SocketLibc.shutdownRaw(fd, SocketLibc.SHUT_RDWR);
            }
        }
    }

    @Override
    public String toString() {
        return "UnixSocket(fd " + fd + ", " + name + ")";
    }
}
