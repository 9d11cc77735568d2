package dev.panamax.vfio;

import dev.panamax.core.sys.LinuxException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * {@code pread(2)} and {@code pwrite(2)} through FFM: how a VFIO device file is read and written at a region's
 * offset (the kernel's vfio-pci turns them into config, BAR and ROM accesses). Kept here, in the one module that
 * needs positioned I/O, with errno captured as {@code dev.panamax.core.sys.Libc} does.
 */
public final class VfioFiles {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.global().allocate(CAPTURE_LAYOUT));
    private static final MethodHandle PREAD = call("pread");
    private static final MethodHandle PWRITE = call("pwrite");

    private VfioFiles() {
    }

    private static MethodHandle call(String name) {
        MemorySegment symbol = LINKER.defaultLookup().find(name)
                .orElseThrow(() -> new UnsatisfiedLinkError("libc has no " + name));
        return LINKER.downcallHandle(symbol, FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    /**
     * {@code pread(2)}: reads up to {@code buffer.byteSize()} bytes at file offset {@code offset}.
     *
     * @param buffer native memory
     * @return the number of bytes read (0 at end of file)
     * @throws LinuxException naming {@code what} on failure
     */
    public static long pread(int fd, MemorySegment buffer, long offset, String what) {
        return transfer(PREAD, fd, buffer, offset, "pread " + what);
    }

    /**
     * {@code pwrite(2)}: writes {@code buffer} at file offset {@code offset}.
     *
     * @param buffer native memory
     * @return the number of bytes written
     * @throws LinuxException naming {@code what} on failure
     */
    public static long pwrite(int fd, MemorySegment buffer, long offset, String what) {
        return transfer(PWRITE, fd, buffer, offset, "pwrite " + what);
    }

    private static long transfer(MethodHandle handle, int fd, MemorySegment buffer, long offset, String what) {
        if (!buffer.isNative()) {
            throw new IllegalArgumentException(what + ": buffer must be native memory");
        }
        try {
            MemorySegment capture = CAPTURE.get();
            long r = (long) handle.invokeExact(capture, fd, buffer, buffer.byteSize(), offset);
            if (r < 0) {
                throw new LinuxException(what, (int) ERRNO.get(capture, 0L));
            }
            return r;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
