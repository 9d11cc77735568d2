package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * {@code fstat(2)}'s {@code st_size} of a file descriptor a client passed, to check that a DMA_MAP
 * range lies within it before it is mmapped (an mmap past a file's end succeeds and then faults
 * with SIGBUS on first access).
 */
final class FdStat {
    /** {@code sizeof(struct stat)} on x86-64 (glibc {@code bits/struct_stat.h}). */
    private static final long STAT_BYTES = 144;
    /** {@code offsetof(struct stat, st_size)} on x86-64: dev, ino, nlink (u64 each), mode, uid, gid, pad (u32 each), rdev. */
    private static final long ST_SIZE = 48;
    private static final MethodHandle FSTAT = Libc.errnoCall("fstat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));

    private FdStat() {
    }

    /**
     * @return the file's size in bytes ({@code st_size})
     * @throws LinuxException with fstat's errno (e.g. EBADF)
     */
    static long size(int fd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment stat = arena.allocate(STAT_BYTES, 8);
            MemorySegment capture = Libc.errnoCapture();
            int r = (int) FSTAT.invokeExact(capture, fd, stat);
            if (r < 0) {
                throw new LinuxException("fstat fd " + fd, Libc.errno(capture));
            }
            return stat.get(JAVA_LONG, ST_SIZE);
        } catch (Throwable t) {
            throw Libc.rethrow(t);
        }
    }
}
