package dev.panamax.vfiouser.transport;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The socket calls of the vfio-user transport, bound through FFM in the style of
 * {@link dev.panamax.core.sys.Libc}: errno captured with {@link Linker.Option#captureCallState}
 * into a per-thread segment; failures throw {@link LinuxException}, the {@code ...Raw} variants
 * return {@code -errno}.
 *
 * <p>Struct layouts are glibc's on x86-64 ({@code sys/socket.h}, {@code sys/un.h}, {@code poll.h});
 * a test compares them with gcc's {@code sizeof}/{@code offsetof}.
 */
public final class SocketLibc {
    // sys/socket.h, bits/socket.h
    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_CLOEXEC = 0x80000;
    public static final int SOL_SOCKET = 1;
    public static final int SCM_RIGHTS = 1;
    /** {@code SO_PEERCRED} (asm-generic/socket.h): the peer's {@code struct ucred} as of connect. */
    public static final int SO_PEERCRED = 17;
    /** {@code struct ucred}: pid_t pid at 0, uid_t uid at 4, gid_t gid at 8; 12 bytes. */
    public static final long UCRED_SIZE = 12;
    public static final int MSG_CTRUNC = 0x8;
    public static final int MSG_TRUNC = 0x20;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;
    public static final int SHUT_RDWR = 2;
    /** The kernel's SCM_MAX_FD: the most fds one SCM_RIGHTS message carries. */
    public static final int SCM_MAX_FD = 253;
    // poll.h
    public static final short POLLIN = 0x1;
    public static final short POLLOUT = 0x4;
    public static final short POLLERR = 0x8;
    public static final short POLLHUP = 0x10;
    public static final short POLLNVAL = 0x20;

    /** {@code struct sockaddr_un}: u16 sun_family at 0, char sun_path[108] at 2; 110 bytes. */
    public static final long SOCKADDR_UN_SIZE = 110;
    public static final long SUN_PATH_OFFSET = 2;
    public static final int SUN_PATH_SIZE = 108;
    /** {@code struct iovec}: void *iov_base at 0, size_t iov_len at 8; 16 bytes. */
    public static final long IOVEC_SIZE = 16;
    /** {@code struct msghdr} on x86-64: 56 bytes. */
    public static final long MSGHDR_SIZE = 56;
    public static final long MSG_NAME = 0;
    public static final long MSG_NAMELEN = 8;
    public static final long MSG_IOV = 16;
    public static final long MSG_IOVLEN = 24;
    public static final long MSG_CONTROL = 32;
    public static final long MSG_CONTROLLEN = 40;
    public static final long MSG_FLAGS = 48;
    /** {@code struct cmsghdr}: size_t cmsg_len at 0, int cmsg_level at 8, int cmsg_type at 12, data at 16. */
    public static final long CMSGHDR_SIZE = 16;
    public static final long CMSG_LEN_OFFSET = 0;
    public static final long CMSG_LEVEL_OFFSET = 8;
    public static final long CMSG_TYPE_OFFSET = 12;
    /** {@code struct pollfd}: int fd at 0, short events at 4, short revents at 6; 8 bytes. */
    public static final long POLLFD_SIZE = 8;

    private static final MethodHandle SOCKET = call("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle SOCKETPAIR = call("socketpair",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle BIND = call("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = call("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = call("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle CONNECT = call("connect", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle SENDMSG = call("sendmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVMSG = call("recvmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle POLL = call("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle GETSOCKOPT = call("getsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle GETEUID = call("geteuid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle SHUTDOWN = call("shutdown", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    private SocketLibc() {
    }

    private static MethodHandle call(String name, FunctionDescriptor descriptor) {
        return Libc.errnoCall(name, descriptor);
    }

    private static int errno(MemorySegment capture) {
        return Libc.errno(capture);
    }

    private static RuntimeException rethrow(Throwable t) {
        return Libc.rethrow(t);
    }

    /** {@code CMSG_ALIGN}: round up to {@code sizeof(size_t)} (8 on x86-64). */
    public static long cmsgAlign(long length) {
        return (length + 7) & ~7L;
    }

    /** {@code CMSG_LEN(n)}: the {@code cmsg_len} of a control message with {@code n} data bytes. */
    public static long cmsgLen(long n) {
        return cmsgAlign(CMSGHDR_SIZE) + n;
    }

    /** {@code CMSG_SPACE(n)}: the bytes a control message with {@code n} data bytes takes in the buffer. */
    public static long cmsgSpace(long n) {
        return cmsgAlign(n) + cmsgAlign(CMSGHDR_SIZE);
    }

    /** {@code socket(2)}. @throws LinuxException e.g. EMFILE */
    public static int socket(int domain, int type, int protocol) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int fd = (int) SOCKET.invokeExact(capture, domain, type, protocol);
            if (fd < 0) {
                throw new LinuxException("socket", errno(capture));
            }
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code socketpair(2)}: two connected sockets. */
    public static int[] socketpair(int domain, int type, int protocol) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Libc.errnoCapture();
            MemorySegment sv = arena.allocate(JAVA_INT, 2);
            int r = (int) SOCKETPAIR.invokeExact(capture, domain, type, protocol, sv);
            if (r < 0) {
                throw new LinuxException("socketpair", errno(capture));
            }
            return new int[] {sv.getAtIndex(JAVA_INT, 0), sv.getAtIndex(JAVA_INT, 1)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Allocates a {@code struct sockaddr_un} for a filesystem path.
     *
     * @throws IllegalArgumentException when the path with its NUL exceeds 108 bytes
     */
    public static MemorySegment sockaddrUn(Arena arena, String path) {
        byte[] bytes = path.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (bytes.length + 1 > SUN_PATH_SIZE) {
            throw new IllegalArgumentException("socket path " + path + " is " + bytes.length + " bytes, sun_path holds 107");
        }
        MemorySegment sa = arena.allocate(SOCKADDR_UN_SIZE, 2);
        sa.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(bytes, 0, sa, java.lang.foreign.ValueLayout.JAVA_BYTE, SUN_PATH_OFFSET, bytes.length);
        return sa;
    }

    /** {@code bind(2)} to a {@code struct sockaddr_un}; {@code what} names it in errors. */
    public static void bind(int fd, MemorySegment address, String what) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) BIND.invokeExact(capture, fd, address, (int) address.byteSize());
            if (r < 0) {
                throw new LinuxException("bind " + what, errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code listen(2)}. */
    public static void listen(int fd, int backlog) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) LISTEN.invokeExact(capture, fd, backlog);
            if (r < 0) {
                throw new LinuxException("listen", errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code accept4(2)} without the peer's address; returns the new fd or {@code -errno}. */
    public static int accept4Raw(int fd, int flags) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) ACCEPT4.invokeExact(capture, fd, MemorySegment.NULL, MemorySegment.NULL, flags);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code connect(2)} to a {@code struct sockaddr_un}. */
    public static void connect(int fd, MemorySegment address, String what) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) CONNECT.invokeExact(capture, fd, address, (int) address.byteSize());
            if (r < 0) {
                throw new LinuxException("connect " + what, errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code sendmsg(2)}; returns the bytes sent or {@code -errno}. */
    public static long sendmsgRaw(int fd, MemorySegment msghdr, int flags) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            long r = (long) SENDMSG.invokeExact(capture, fd, msghdr, flags);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code recvmsg(2)}; returns the bytes received (0 at end of stream) or {@code -errno}. */
    public static long recvmsgRaw(int fd, MemorySegment msghdr, int flags) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            long r = (long) RECVMSG.invokeExact(capture, fd, msghdr, flags);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code poll(2)} on the {@code nfds} {@code struct pollfd} in {@code fds}; returns the ready count or {@code -errno}. */
    public static int pollRaw(MemorySegment fds, long nfds, int timeoutMillis) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) POLL.invokeExact(capture, fds, nfds, timeoutMillis);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code shutdown(2)}; returns 0 or {@code -errno} (ENOTCONN when the peer is gone is harmless). */
    public static int shutdownRaw(int fd, int how) {
        try {
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) SHUTDOWN.invokeExact(capture, fd, how);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code getsockopt(fd, SOL_SOCKET, SO_PEERCRED)} (unix(7)): the peer's credentials as of its connect.
     *
     * @return {pid, uid, gid}
     * @throws LinuxException e.g. ENOTCONN
     */
    public static int[] peerCredentials(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = Libc.errnoCapture();
            MemorySegment ucred = arena.allocate(UCRED_SIZE, 4);
            MemorySegment length = arena.allocate(JAVA_INT);
            length.set(JAVA_INT, 0, (int) UCRED_SIZE);
            int r = (int) GETSOCKOPT.invokeExact(capture, fd, SOL_SOCKET, SO_PEERCRED, ucred, length);
            if (r < 0) {
                throw new LinuxException("getsockopt SO_PEERCRED", errno(capture));
            }
            if (length.get(JAVA_INT, 0) != UCRED_SIZE) {
                throw new LinuxException("getsockopt SO_PEERCRED gave " + length.get(JAVA_INT, 0) + " bytes", dev.panamax.core.sys.Errno.EINVAL);
            }
            return new int[] {ucred.get(JAVA_INT, 0), ucred.get(JAVA_INT, 4), ucred.get(JAVA_INT, 8)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code geteuid(2)}: this process's effective uid (never fails). */
    public static int geteuid() {
        try {
            return (int) GETEUID.invokeExact(Libc.errnoCapture());
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
