package dev.panamax.core;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.core.sys.MemFd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LibcTest {
    /**
     * Prints, as "NAME value", every constant of {@link Libc} and {@link Errno} as the C headers define it
     * (glibc's {@code fcntl.h}, {@code sys/mman.h}, the kernel's {@code linux/memfd.h}, {@code sys/eventfd.h}, {@code signal.h}, {@code errno.h},
     * which take the values from the kernel's {@code asm-generic} headers). {@code SIGSET_T_BYTES} is
     * {@code sizeof(sigset_t)}; {@code STAT_BYTES} and {@code STAT_ST_SIZE_OFFSET} are {@code struct stat}'s size
     * and {@code st_size}'s and {@code st_blocks}' offsets; {@code HUGE_PAGE_BYTES} is the page size {@code MFD_HUGE_2MB} encodes.
     */
    private static final String CONSTANTS_PROGRAM = """
            #define _GNU_SOURCE
            #include <errno.h>
            #include <fcntl.h>
            #include <signal.h>
            #include <stddef.h>
            #include <stdio.h>
            #include <sys/eventfd.h>
            #include <sys/mman.h>
            #include <sys/stat.h>
            #include <unistd.h>
            #include <linux/memfd.h>
            #define P(name) printf("%s %ld\\n", #name, (long)(name))
            int main(void) {
                P(O_RDONLY); P(O_WRONLY); P(O_RDWR); P(O_NONBLOCK); P(O_CLOEXEC);
                P(SEEK_DATA); P(SEEK_HOLE);
                P(F_GETFL); P(F_SETFL); P(F_ADD_SEALS); P(F_GET_SEALS);
                P(F_SEAL_SEAL); P(F_SEAL_SHRINK); P(F_SEAL_GROW);
                printf("SEALS %ld\\n", (long)(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
                printf("HUGE_PAGE_BYTES %ld\\n", 1L << ((MFD_HUGE_2MB >> MFD_HUGE_SHIFT) & MFD_HUGE_MASK));
                printf("STAT_BYTES %ld\\n", (long)sizeof(struct stat));
                printf("STAT_ST_SIZE_OFFSET %ld\\n", (long)offsetof(struct stat, st_size));
                printf("STAT_ST_BLOCKS_OFFSET %ld\\n", (long)offsetof(struct stat, st_blocks));
                P(PROT_NONE); P(PROT_READ); P(PROT_WRITE); P(PROT_EXEC);
                P(MAP_SHARED); P(MAP_PRIVATE); P(MAP_FIXED); P(MAP_ANONYMOUS); P(MAP_NORESERVE);
                P(MADV_DONTFORK); P(MADV_HUGEPAGE);
                P(MFD_CLOEXEC); P(MFD_ALLOW_SEALING); P(MFD_HUGETLB); P(MFD_HUGE_2MB);
                P(EFD_CLOEXEC); P(EFD_NONBLOCK);
                P(SIG_BLOCK); P(SIG_UNBLOCK); P(SIG_SETMASK);
                printf("SIGSET_T_BYTES %ld\\n", (long)sizeof(sigset_t));
                P(EPERM); P(ENOENT); P(EINTR); P(EIO); P(ENXIO); P(E2BIG); P(EBADF); P(EAGAIN); P(ENOMEM);
                P(EACCES); P(EFAULT); P(EBUSY); P(EEXIST); P(ENODEV); P(EINVAL); P(EMFILE); P(ENOTTY);
                P(ENOSPC); P(EPIPE); P(ERANGE); P(ENOSYS); P(EOPNOTSUPP); P(ECONNRESET); P(ETIMEDOUT);
                return 0;
            }
            """;

    /**
     * Every {@code static final} number of {@link Libc}, {@link Errno}, {@link MemFd} and {@link EventFd} (found
     * by reflection, so a constant added later without a line in the C program fails here) equals what gcc
     * computes from the C headers, as vfio-user-pci's {@code LayoutTest} checks the socket constants. Fails
     * (does not skip) when gcc is missing.
     */
    @Test
    void constantsMatchTheCHeaders(@TempDir Path dir) throws Exception {
        Map<String, Long> c = compileAndRun(dir, CONSTANTS_PROGRAM);
        int checked = 0;
        for (Class<?> k : List.of(Libc.class, Errno.class, MemFd.class, EventFd.class)) {
            for (Field f : k.getDeclaredFields()) {
                int m = f.getModifiers();
                if (!Modifier.isStatic(m) || !Modifier.isFinal(m) || (f.getType() != int.class && f.getType() != long.class)) {
                    continue;
                }
                f.setAccessible(true);
                long java = ((Number) f.get(null)).longValue();
                String name = k.getSimpleName() + "." + f.getName();
                assertTrue(c.containsKey(f.getName()), name + " has no line in the C program");
                assertEquals(c.get(f.getName()), java, name + " differs from the C headers");
                checked++;
            }
        }
        assertEquals(c.size(), checked, "the C program prints constants that Java does not define: " + c.keySet());
    }

    private static Map<String, Long> compileAndRun(Path dir, String program) throws IOException, InterruptedException {
        Path src = dir.resolve("constants.c");
        Path exe = dir.resolve("constants");
        Files.writeString(src, program);
        Process gcc = new ProcessBuilder("gcc", "-O0", "-Wall", "-o", exe.toString(), src.toString())
                .redirectErrorStream(true).start();
        String gccOut = new String(gcc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(gcc.waitFor(60, TimeUnit.SECONDS), "gcc timed out");
        assertEquals(0, gcc.exitValue(), "gcc failed: " + gccOut);
        Process run = new ProcessBuilder(exe.toString()).redirectErrorStream(true).start();
        List<String> lines = new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
        assertTrue(run.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, run.exitValue());
        Map<String, Long> c = new HashMap<>();
        for (String line : lines) {
            int sp = line.lastIndexOf(' ');
            c.put(line.substring(0, sp), Long.parseLong(line.substring(sp + 1)));
        }
        return c;
    }

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
