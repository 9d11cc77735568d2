package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Parses the distribution kernel, /boot/vmlinuz-* (the newest version). CI installs linux-image-amd64;
 * a missing kernel is a failure, not a skip.
 */
class DebianKernelTest {

    static Path newestKernel() throws IOException {
        List<Path> kernels;
        if (!Files.isDirectory(Path.of("/boot"))) {
            fail("no /boot directory: install a distribution kernel (apt-get install linux-image-amd64)");
        }
        try (Stream<Path> s = Files.list(Path.of("/boot"))) {
            kernels = s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-")).toList();
        }
        if (kernels.isEmpty()) {
            fail("no /boot/vmlinuz-* found: install a distribution kernel (apt-get install linux-image-amd64)");
        }
        return kernels.stream().max(Comparator.comparing(DebianKernelTest::versionKey, DebianKernelTest::compareVersions))
                .orElseThrow();
    }

    private static String versionKey(Path p) {
        return p.getFileName().toString().substring("vmlinuz-".length());
    }

    /** Compares "6.1.0-56-amd64" style versions number by number. */
    static int compareVersions(String a, String b) {
        String[] x = a.split("[^0-9]+");
        String[] y = b.split("[^0-9]+");
        for (int i = 0; i < Math.min(x.length, y.length); i++) {
            if (x[i].isEmpty() || y[i].isEmpty()) {
                continue;
            }
            int c = new java.math.BigInteger(x[i]).compareTo(new java.math.BigInteger(y[i]));
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(x.length, y.length) != 0 ? Integer.compare(x.length, y.length) : a.compareTo(b);
    }

    @Test
    void versionsCompareNumerically() {
        assertTrue(compareVersions("6.10.0-1-amd64", "6.9.0-3-amd64") > 0);
        assertTrue(compareVersions("6.1.0-56-amd64", "6.1.0-9-amd64") > 0);
        assertEquals(0, compareVersions("6.1.0-56-amd64", "6.1.0-56-amd64"));
    }

    @Test
    void theInstalledKernelIsABootable64BitBzImage() throws Exception {
        Path path = newestKernel();
        BzImage k = BzImage.read(path);
        assertTrue(k.protocolVersion() >= 0x020C, k.toString());
        assertTrue((k.xloadflags() & ZeroPage.XLF_KERNEL_64) != 0, k.toString());
        assertTrue(k.relocatable(), k.toString());
        assertTrue(k.cmdlineSize() >= 255, k.toString());
        assertTrue(k.initSize() > k.protectedModeKernel().byteSize(), k.toString());
        assertTrue(k.setupHeaderEnd() >= 0x268, k.toString());
        // syssize covers the kernel; what may follow it in the file is at most a small trailer (a signature).
        long trailer = Files.size(path) - k.setupSize() - k.protectedModeKernel().byteSize();
        assertTrue(trailer >= 0 && trailer < 64 * 1024, "trailer of " + trailer + " bytes: " + k);
    }

    @Test
    void theInstalledKernelLoadsInto256MiB() throws Exception {
        BzImage k = BzImage.read(newestKernel());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(256L << 20, 4096);
            var state = LinuxBoot.load(ram, 0, k, new byte[] {1, 2, 3}, "console=ttyS0", 2);
            assertEquals(0x100200, state.rip());
            byte[] file = Files.readAllBytes(newestKernel());
            MemorySegment loaded = ram.asSlice(0x100000, k.protectedModeKernel().byteSize());
            assertEquals(-1, loaded.mismatch(MemorySegment.ofArray(file).asSlice(k.setupSize(), loaded.byteSize())));
            MemorySegment zeroPage = ram.asSlice(0x7000, 4096);
            assertEquals(0x53726448, zeroPage.get(Le.U32, 0x202));
            assertEquals(0xFF, Le.u8(zeroPage, 0x210));
            long initrd = Le.u32(zeroPage, 0x218);
            assertTrue(initrd >= LinuxBoot.kernelEnd(k) && initrd + 3 <= 256L << 20, Long.toHexString(initrd));
        }
    }
}
