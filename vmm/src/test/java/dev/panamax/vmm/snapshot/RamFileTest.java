package dev.panamax.vmm.snapshot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link RamFile}: sparse on disk, whole when read back, and a damaged or resized file refused. */
class RamFileTest {
    private static final long RAM = 8L << 20;

    /** 8 MiB of "guest RAM" with a few pages written: the first, one in the middle, the last byte. */
    private static MemorySegment ram(Arena arena) {
        MemorySegment m = arena.allocate(RAM, RamFile.PAGE);
        m.set(JAVA_LONG, 0, 0x1122334455667788L);
        m.set(JAVA_LONG, 3 * RamFile.PAGE + 8, -1L);
        m.set(JAVA_LONG, 4 * RamFile.PAGE, 42L); // next to the previous: one run of two pages
        m.set(JAVA_BYTE, RAM - 1, (byte) 0x5a);
        return m;
    }

    @Test
    void roundTripIsSparseAndWhole(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = ram(arena);
            Path f = dir.resolve("ram");
            RamFile.Written w = RamFile.write(m, f);
            assertEquals(RAM, w.bytes());
            assertEquals(RAM, Files.size(f));
            // Four pages of data; file systems round up, but nowhere near the 2048 pages of the logical size.
            assertTrue(w.diskBytes() < RAM / 4, "not sparse: " + w.diskBytes() + " bytes on disk");
            MemorySegment back = arena.allocate(RAM, RamFile.PAGE);
            RamFile.read(f, back, w.crc32c());
            assertEquals(-1, back.mismatch(m));
        }
    }

    @Test
    void allZeroRamTakesNoDataBlocks(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = arena.allocate(RAM, RamFile.PAGE);
            RamFile.Written w = RamFile.write(m, dir.resolve("ram"));
            assertTrue(w.diskBytes() <= 64 * 1024, w.diskBytes() + " bytes on disk for all-zero RAM");
        }
    }

    @Test
    void damagedFileIsRefused(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path f = dir.resolve("ram");
            RamFile.Written w = RamFile.write(ram(arena), f);
            try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
                raf.seek(5 * RamFile.PAGE + 17); // inside a hole: a byte that was zero
                raf.write(1);
            }
            MemorySegment back = arena.allocate(RAM, RamFile.PAGE);
            SnapshotException e = assertThrows(SnapshotException.class, () -> RamFile.read(f, back, w.crc32c()));
            assertTrue(e.getMessage().contains("damaged"), e.getMessage());
        }
    }

    @Test
    void fileOfAnotherSizeIsRefused(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path f = dir.resolve("ram");
            RamFile.Written w = RamFile.write(ram(arena), f);
            try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
                raf.setLength(RAM - RamFile.PAGE);
            }
            MemorySegment back = arena.allocate(RAM, RamFile.PAGE);
            SnapshotException e = assertThrows(SnapshotException.class, () -> RamFile.read(f, back, w.crc32c()));
            assertTrue(e.getMessage().contains("not the " + RAM + " bytes"), e.getMessage());
        }
    }

    @Test
    void existingFileIsNotOverwritten(@TempDir Path dir) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path f = Files.writeString(dir.resolve("ram"), "keep me");
            assertThrows(java.nio.file.FileAlreadyExistsException.class, () -> RamFile.write(ram(arena), f));
            assertEquals("keep me", Files.readString(f));
        }
    }
}
