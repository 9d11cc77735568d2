package dev.panamax.core;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class LibcTest {
    @Test
    void errnoIsCapturedAndNamed() {
        LinuxException e = assertThrows(LinuxException.class, () -> Libc.open("/nonexistent/panamax", Libc.O_RDONLY));
        assertEquals(Errno.ENOENT, e.errno());
        assertEquals("open /nonexistent/panamax: No such file or directory (ENOENT)", e.getMessage());
    }

    @Test
    void ioctlOnANonDeviceIsENOTTY() {
        int fd = Libc.open("/dev/null", Libc.O_RDONLY | Libc.O_CLOEXEC);
        try {
            // KVM_GET_API_VERSION on /dev/null: the kernel has no such ioctl for it.
            assertEquals(-Errno.ENOTTY, Libc.ioctlRaw(fd, 0xAE00, 0));
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void eventfdCounts() {
        try (EventFd e = new EventFd(true)) {
            assertEquals(0, e.read());
            e.signal();
            e.signal();
            assertEquals(2, e.read());
            assertEquals(0, e.read());
        }
    }

    @Test
    void sigsetSetsBitNMinusOne() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment set = Libc.sigset(arena, 1, 10, 64, 65);
            assertEquals(1L | (1L << 9) | (1L << 63), set.get(JAVA_LONG, 0));
            assertEquals(1L, set.get(JAVA_LONG, 8));
            assertEquals(Libc.SIGSET_T_BYTES, set.byteSize());
        }
    }
}
