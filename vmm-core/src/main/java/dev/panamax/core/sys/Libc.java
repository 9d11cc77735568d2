package dev.panamax.core.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The C library calls Panamax makes, bound through FFM ({@code java.lang.foreign}): every system
 * call and ioctl of the project goes through here. No JNI, no C.
 *
 * <p>Calls that set {@code errno} capture it with {@link Linker.Option#captureCallState} into a
 * per-thread segment (allocated once per thread, so the hot path, e.g. {@code KVM_RUN}, does not
 * allocate). Failures throw {@link LinuxException} naming the call, except the {@code ...Raw}
 * variants that return {@code -errno} for loops that expect some errors (EINTR, EAGAIN).
 *
 * <p>Signatures follow the man pages (section 2 and 3); sizes are in bytes, {@code MemorySegment}
 * arguments are host-virtual memory.
 */
public final class Libc {
    // fcntl.h / bits/fcntl-linux.h
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;
    /** {@code fcntl(2)} commands: file status flags, and file seals ({@code F_ADD_SEALS}, {@code F_GET_SEALS}). */
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;
    public static final int F_ADD_SEALS = 1033;
    public static final int F_GET_SEALS = 1034;
    /** File seals ({@code fcntl(2)}, "File Sealing"): no more seals, no shrinking, no growing. */
    public static final int F_SEAL_SEAL = 0x1;
    public static final int F_SEAL_SHRINK = 0x2;
    public static final int F_SEAL_GROW = 0x4;
    /** {@code sizeof(struct stat)} and {@code offsetof(struct stat, st_size)} on x86-64 ({@code bits/struct_stat.h}). */
    public static final long STAT_BYTES = 144;
    public static final long STAT_ST_SIZE_OFFSET = 48;
    public static final long STAT_ST_BLOCKS_OFFSET = 64;
    // sys/mman.h
    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int PROT_EXEC = 4;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_FIXED = 0x10;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    /** {@code madvise(2)} advice: leave the range out of a {@code fork(2)} child (QEMU does so for guest RAM: DMA-pinned pages must not become copy-on-write). */
    public static final int MADV_DONTFORK = 10;
    /** {@code madvise(2)} advice: back the range with transparent huge pages where the kernel allows it. */
    public static final int MADV_HUGEPAGE = 14;
    /** {@code memfd_create(2)} flags; {@code MFD_HUGE_2MB} ({@code <linux/memfd.h>}) picks 2 MiB pages for {@code MFD_HUGETLB}. */
    public static final int MFD_CLOEXEC = 0x1;
    public static final int MFD_ALLOW_SEALING = 0x2;
    public static final int MFD_HUGETLB = 0x4;
    public static final int MFD_HUGE_2MB = 21 << 26;
    /** {@code eventfd(2)} flags. */
    public static final int EFD_CLOEXEC = O_CLOEXEC;
    public static final int EFD_NONBLOCK = O_NONBLOCK;
    /** {@code pthread_sigmask(3)} {@code how}. */
    public static final int SIG_BLOCK = 0;
    public static final int SIG_UNBLOCK = 1;
    public static final int SIG_SETMASK = 2;
    /** glibc's {@code sigset_t} is 1024 bits. */
    public static final long SIGSET_T_BYTES = 128;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup C = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO =
            CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option ERRNO_OPTION = Linker.Option.captureCallState("errno");
    /** One errno capture buffer per thread, allocated on first use and never freed (a few bytes). */
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.global().allocate(CAPTURE_LAYOUT));

    private static final MethodHandle OPEN = errnoCall("open",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle CLOSE = errnoCall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle IOCTL_PTR = errnoCall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_LONG = errnoCall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle MMAP = errnoCall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = errnoCall("munmap",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle MADVISE = errnoCall("madvise",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle MEMFD_CREATE = errnoCall("memfd_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FTRUNCATE = errnoCall("ftruncate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FCNTL = errnoCall("fcntl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle FSTAT = errnoCall("fstat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle READ = errnoCall("read",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle PREAD = errnoCall("pread",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle LSEEK = errnoCall("lseek",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    private static final MethodHandle WRITE = errnoCall("write",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle EVENTFD = errnoCall("eventfd",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle DUP = errnoCall("dup", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle SIGTIMEDWAIT = errnoCall("sigtimedwait",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    // pthread functions return the error number instead of setting errno.
    private static final MethodHandle PTHREAD_SELF = call("pthread_self", FunctionDescriptor.of(JAVA_LONG));
    private static final MethodHandle PTHREAD_KILL = call("pthread_kill",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT));
    private static final MethodHandle PTHREAD_SIGMASK = call("pthread_sigmask",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle STRERROR = call("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private Libc() {
    }

    private static MethodHandle call(String name, FunctionDescriptor descriptor, Linker.Option... options) {
        MemorySegment symbol = C.find(name).orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, descriptor, options);
    }

    /**
     * A downcall handle to libc's {@code name} that captures {@code errno}: its first argument is the
     * capture segment ({@link #errnoCapture()}), then the C arguments. For other modules' calls (e.g.
     * the vfio-user transport's sockets), so that all of them share this one way of binding libc.
     *
     * @throws UnsatisfiedLinkError if libc has no such symbol
     */
    public static MethodHandle errnoCall(String name, FunctionDescriptor descriptor, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = ERRNO_OPTION;
        System.arraycopy(extra, 0, options, 1, extra.length);
        return call(name, descriptor, options);
    }

    /** @return this thread's errno capture segment, allocated once per thread: pass it to an {@link #errnoCall} handle */
    public static MemorySegment errnoCapture() {
        return CAPTURE.get();
    }

    /** @return the errno that the last errno-capturing call left in {@code capture} */
    public static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    /** Unchecked exceptions and errors from {@code invokeExact} as they are; anything else wrapped. */
    public static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    /**
     * {@code open(2)}.
     *
     * @return the new file descriptor
     * @throws LinuxException e.g. ENOENT, EACCES; the message names the path
     */
    public static int open(String path, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = CAPTURE.get();
            int fd = (int) OPEN.invokeExact(capture, arena.allocateFrom(path), flags, 0);
            if (fd < 0) {
                throw new LinuxException("open " + path, errno(capture));
            }
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code close(2)}; an error (other than EINTR, after which the fd is gone anyway) throws. */
    public static void close(int fd) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) CLOSE.invokeExact(capture, fd);
            if (r < 0 && errno(capture) != Errno.EINTR) {
                throw new LinuxException("close fd " + fd, errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code dup(2)}: a second descriptor for the same open file. */
    public static int dup(int fd) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) DUP.invokeExact(capture, fd);
            if (r < 0) {
                throw new LinuxException("dup fd " + fd, errno(capture));
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code ioctl(2)} whose argument is a pointer to a struct in {@code arg}.
     *
     * @param what the request's name for the error message, e.g. {@code "KVM_SET_REGS"}
     * @return the non-negative result
     * @throws LinuxException when the ioctl returns -1
     */
    public static int ioctl(int fd, long request, MemorySegment arg, String what) {
        int r = ioctlRaw(fd, request, arg);
        if (r < 0) {
            throw new LinuxException(what, -r);
        }
        return r;
    }

    /** {@code ioctl(2)} whose argument is an integer (or none: pass 0). Errors as {@link #ioctl(int, long, MemorySegment, String)}. */
    public static int ioctl(int fd, long request, long arg, String what) {
        int r = ioctlRaw(fd, request, arg);
        if (r < 0) {
            throw new LinuxException(what, -r);
        }
        return r;
    }

    /** {@code ioctl(2)} with a pointer argument; returns the result, or {@code -errno} on failure. */
    public static int ioctlRaw(int fd, long request, MemorySegment arg) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) IOCTL_PTR.invokeExact(capture, fd, request, arg);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code ioctl(2)} with an integer argument and the caller's own errno capture segment ({@link #newErrnoCapture}),
     * for a loop that must not look up the thread's ({@code KVM_RUN}: a thread-local lookup per call is half the
     * downcall's cost when the JIT stops at C1). Returns the result, or {@code -errno} on failure.
     */
    public static int ioctlRaw(MemorySegment capture, int fd, long request, long arg) {
        try {
            int r = (int) IOCTL_LONG.invokeExact(capture, fd, request, arg);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** @return a new errno capture segment in {@code arena}, for {@link #ioctlRaw(MemorySegment, int, long, long)} */
    public static MemorySegment newErrnoCapture(Arena arena) {
        return arena.allocate(CAPTURE_LAYOUT);
    }

    /** {@code ioctl(2)} with an integer argument; returns the result, or {@code -errno} on failure. */
    public static int ioctlRaw(int fd, long request, long arg) {
        return ioctlRaw(CAPTURE.get(), fd, request, arg);
    }

    /**
     * {@code mmap(2)} with no address hint.
     *
     * @param length bytes
     * @param offset byte offset in the file (a multiple of the page size)
     * @return a segment of {@code length} bytes at the host-virtual address of the mapping; unmap it with {@link #munmap}
     */
    public static MemorySegment mmap(long length, int prot, int flags, int fd, long offset, String what) {
        try {
            MemorySegment capture = CAPTURE.get();
            MemorySegment p = (MemorySegment) MMAP.invokeExact(capture, MemorySegment.NULL, length, prot, flags, fd, offset);
            if (p.address() == -1L) {
                throw new LinuxException("mmap " + what + " (" + length + " bytes)", errno(capture));
            }
            return p.reinterpret(length);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code munmap(2)} of a segment returned by {@link #mmap}. */
    public static void munmap(MemorySegment mapping) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) MUNMAP.invokeExact(capture, mapping, mapping.byteSize());
            if (r < 0) {
                throw new LinuxException("munmap", errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code madvise(2)} over the whole segment; returns 0, or {@code -errno} (EINVAL: advice unknown to this kernel). */
    public static int madviseRaw(MemorySegment mapping, int advice) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) MADVISE.invokeExact(capture, mapping, mapping.byteSize(), advice);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code memfd_create(2)}: an anonymous file, e.g. for guest RAM that other processes may map. */
    public static int memfdCreate(String name, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = CAPTURE.get();
            int fd = (int) MEMFD_CREATE.invokeExact(capture, arena.allocateFrom(name), flags);
            if (fd < 0) {
                throw new LinuxException("memfd_create " + name, errno(capture));
            }
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code ftruncate(2)}: set a file's size in bytes. */
    public static void ftruncate(int fd, long length) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) FTRUNCATE.invokeExact(capture, fd, length);
            if (r < 0) {
                throw new LinuxException("ftruncate fd " + fd + " to " + length + " bytes", errno(capture));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code fcntl(2)} with an integer argument (0 where the command takes none); returns the result or {@code -errno}. */
    public static int fcntlRaw(int fd, int cmd, int arg) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) FCNTL.invokeExact(capture, fd, cmd, arg);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code fcntl(2)} with an integer argument.
     *
     * @param what the command's name for the error message, e.g. {@code "F_ADD_SEALS"}
     * @return the non-negative result
     * @throws LinuxException when fcntl returns -1, e.g. EPERM adding a seal to a sealed file, EBADF
     */
    public static int fcntl(int fd, int cmd, int arg, String what) {
        int r = fcntlRaw(fd, cmd, arg);
        if (r < 0) {
            throw new LinuxException(what + " fd " + fd, -r);
        }
        return r;
    }

    /** Sets {@code O_NONBLOCK} on {@code fd}'s open file description (shared with every dup of it, also in other processes). */
    public static void setNonBlocking(int fd) {
        int flags = fcntl(fd, F_GETFL, 0, "F_GETFL");
        if ((flags & O_NONBLOCK) == 0) {
            fcntl(fd, F_SETFL, flags | O_NONBLOCK, "F_SETFL O_NONBLOCK");
        }
    }

    /**
     * {@code fstat(2)}'s {@code st_size}.
     *
     * @return the file's size in bytes (for a memfd or regular file; 0 for most other kinds)
     * @throws LinuxException e.g. EBADF
     */
    public static long fstatSize(int fd) {
        return fstatLong(fd, STAT_ST_SIZE_OFFSET);
    }

    /**
     * {@code fstat(2)}'s {@code st_blocks}: 512-byte blocks the file takes on disk (less than its size for a sparse file).
     *
     * @throws LinuxException e.g. EBADF
     */
    public static long fstatBlocks(int fd) {
        return fstatLong(fd, STAT_ST_BLOCKS_OFFSET);
    }

    /** One 8-byte field of x86-64's {@code struct stat} ({@code asm/stat.h}). */
    private static long fstatLong(int fd, long offset) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = CAPTURE.get();
            MemorySegment st = arena.allocate(STAT_BYTES, 8);
            int r = (int) FSTAT.invokeExact(capture, fd, st);
            if (r < 0) {
                throw new LinuxException("fstat fd " + fd, errno(capture));
            }
            return st.get(JAVA_LONG, offset);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code read(2)} into the whole segment; returns the byte count, 0 at end of file, or {@code -errno}. */
    public static long readRaw(int fd, MemorySegment buffer) {
        try {
            MemorySegment capture = CAPTURE.get();
            long r = (long) READ.invokeExact(capture, fd, buffer, buffer.byteSize());
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code pread(2)} into the whole segment from file offset {@code offset}; returns the byte count, 0 at end of file, or {@code -errno}. */
    public static long preadRaw(int fd, MemorySegment buffer, long offset) {
        try {
            MemorySegment capture = CAPTURE.get();
            long r = (long) PREAD.invokeExact(capture, fd, buffer, buffer.byteSize(), offset);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code lseek(2)}; with {@link #SEEK_DATA} or {@link #SEEK_HOLE} it finds the next data or hole of a sparse file
     * at or after {@code offset} (file systems without holes report all data).
     *
     * @return the new offset, or {@code -errno} (ENXIO: no data at or after {@code offset})
     */
    public static long lseekRaw(int fd, long offset, int whence) {
        try {
            MemorySegment capture = CAPTURE.get();
            long r = (long) LSEEK.invokeExact(capture, fd, offset, whence);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code write(2)} of the whole segment; returns the byte count or {@code -errno}. */
    public static long writeRaw(int fd, MemorySegment buffer) {
        try {
            MemorySegment capture = CAPTURE.get();
            long r = (long) WRITE.invokeExact(capture, fd, buffer, buffer.byteSize());
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code eventfd(2)}. */
    public static int eventfd(int initialValue, int flags) {
        try {
            MemorySegment capture = CAPTURE.get();
            int fd = (int) EVENTFD.invokeExact(capture, initialValue, flags);
            if (fd < 0) {
                throw new LinuxException("eventfd", errno(capture));
            }
            return fd;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** @return the calling thread's {@code pthread_t} (for {@link #pthreadKill}) */
    public static long pthreadSelf() {
        try {
            return (long) PTHREAD_SELF.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code pthread_kill(3)}: send {@code signal} to one thread of this process. */
    public static void pthreadKill(long thread, int signal) {
        try {
            int r = (int) PTHREAD_KILL.invokeExact(thread, signal);
            if (r != 0) {
                throw new LinuxException("pthread_kill signal " + signal, r);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code pthread_sigmask(3)} for the calling thread; {@code oldSet} may be {@link MemorySegment#NULL}. */
    public static void pthreadSigmask(int how, MemorySegment set, MemorySegment oldSet) {
        try {
            int r = (int) PTHREAD_SIGMASK.invokeExact(how, set, oldSet);
            if (r != 0) {
                throw new LinuxException("pthread_sigmask", r);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * {@code sigtimedwait(2)}: take one pending signal of {@code set}.
     *
     * @param timeout a {@code struct timespec} (16 bytes), e.g. zero for "only if already pending"
     * @return the signal number, or {@code -errno} (EAGAIN: none pending; EINTR)
     */
    public static int sigtimedwaitRaw(MemorySegment set, MemorySegment timeout) {
        try {
            MemorySegment capture = CAPTURE.get();
            int r = (int) SIGTIMEDWAIT.invokeExact(capture, set, MemorySegment.NULL, timeout);
            return r < 0 ? -errno(capture) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Allocates a glibc {@code sigset_t} (128 bytes) holding the given signals. Signal {@code n} is
     * bit {@code n - 1}, the layout the kernel's {@code sigset_t} also uses for its first 64 bits.
     */
    public static MemorySegment sigset(Arena arena, int... signals) {
        MemorySegment set = arena.allocate(SIGSET_T_BYTES, 8);
        for (int s : signals) {
            long word = set.get(JAVA_LONG, (long) ((s - 1) / 64) * 8);
            set.set(JAVA_LONG, (long) ((s - 1) / 64) * 8, word | (1L << ((s - 1) % 64)));
        }
        return set;
    }

    /** {@code strerror(3)}, for messages. */
    public static String strerror(int errno) {
        try {
            MemorySegment p = (MemorySegment) STRERROR.invokeExact(errno);
            return p.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
