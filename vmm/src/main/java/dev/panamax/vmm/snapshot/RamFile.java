package dev.panamax.vmm.snapshot;

import dev.panamax.core.sys.Libc;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * Guest RAM in a snapshot: one file holding the bytes of guest RAM in host-mapping order (the {@code GuestRam}
 * allocation: "ram-low" then "ram-high"), written sparse: a page of zeros is a hole, never written, so the file takes
 * on disk about what the guest touched. Its checksum is the CRC32C (Castagnoli, as {@link CRC32C}) of the whole
 * logical content, holes read as zeros, so it does not depend on how the file system stores holes.
 *
 * <p>Reading copies only the pages that are not zero into guest RAM, so pages the guest never touched stay untouched
 * on the host too (fresh guest RAM reads as zeros already).
 */
public final class RamFile {
    /** The unit of holes: one x86 page, bytes. */
    static final int PAGE = 4096;
    /** Bytes read or written per system call. */
    private static final int CHUNK = 1 << 20;

    /** What {@link #write} wrote: the logical size and the bytes on disk (both bytes), and the checksum. */
    public record Written(long bytes, long diskBytes, long crc32c) {
    }

    private RamFile() {
    }

    /**
     * Writes {@code ram} (host-mapped guest RAM, a multiple of {@value #PAGE} bytes) to a new file {@code path}.
     *
     * @throws IOException if the file exists or cannot be written
     */
    public static Written write(MemorySegment ram, Path path) throws IOException {
        if (ram.byteSize() % PAGE != 0) {
            throw new IllegalArgumentException("guest RAM of " + ram.byteSize() + " bytes is not whole pages");
        }
        CRC32C crc = new CRC32C();
        try (FileChannel out = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            long runStart = -1;
            for (long off = 0; off < ram.byteSize(); off += PAGE) {
                MemorySegment page = ram.asSlice(off, PAGE);
                crc.update(page.asByteBuffer());
                boolean zero = isZero(page);
                if (!zero && runStart < 0) {
                    runStart = off;
                } else if (zero && runStart >= 0) {
                    writeFully(out, ram.asSlice(runStart, off - runStart), runStart);
                    runStart = -1;
                }
            }
            if (runStart >= 0) {
                writeFully(out, ram.asSlice(runStart, ram.byteSize() - runStart), runStart);
            }
            // The logical size: a trailing hole still counts.
            try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
                f.setLength(ram.byteSize());
            }
            out.force(true);
        }
        return new Written(ram.byteSize(), diskBytes(path), crc.getValue());
    }

    /**
     * Reads {@code path} into {@code ram} (fresh guest RAM: zero), checking its size and checksum.
     *
     * @param crc32c the checksum the manifest gives
     * @throws SnapshotException if the file is not {@code ram.byteSize()} bytes or its checksum differs; RAM is then
     *                           partly written, and must be thrown away
     * @throws IOException       if it cannot be read
     */
    public static void read(Path path, MemorySegment ram, long crc32c) throws IOException {
        long size = Files.size(path);
        if (size != ram.byteSize()) {
            throw new SnapshotException("snapshot RAM file " + path + " is " + size + " bytes, not the "
                    + ram.byteSize() + " bytes of guest RAM the manifest gives");
        }
        CRC32C crc = new CRC32C();
        try (FileChannel in = FileChannel.open(path, StandardOpenOption.READ); Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(CHUNK, PAGE);
            for (long off = 0; off < size; off += CHUNK) {
                int n = (int) Math.min(CHUNK, size - off);
                ByteBuffer b = buffer.asSlice(0, n).asByteBuffer();
                while (b.hasRemaining()) {
                    if (in.read(b, off + b.position()) < 0) {
                        throw new SnapshotException("snapshot RAM file " + path + " ended at byte " + (off + b.position()));
                    }
                }
                crc.update(buffer.asSlice(0, n).asByteBuffer());
                for (int p = 0; p < n; p += PAGE) {
                    MemorySegment page = buffer.asSlice(p, PAGE);
                    if (!isZero(page)) {
                        ram.asSlice(off + p, PAGE).copyFrom(page);
                    }
                }
            }
        }
        if (crc.getValue() != crc32c) {
            throw new SnapshotException(String.format("snapshot RAM file %s is damaged: CRC32C %08x, the manifest says %08x",
                    path, crc.getValue(), crc32c));
        }
    }

    /** A page of zeros to compare with (allocate zero-fills). */
    private static final MemorySegment ZERO_PAGE = Arena.global().allocate(PAGE, PAGE);

    /** @return whether the page is all zero bytes (a vectorized compare) */
    static boolean isZero(MemorySegment page) {
        return page.mismatch(ZERO_PAGE) == -1;
    }

    private static void writeFully(FileChannel out, MemorySegment data, long position) throws IOException {
        ByteBuffer b = data.asByteBuffer();
        while (b.hasRemaining()) {
            out.write(b, position + b.position());
        }
    }

    /** @return the bytes the file takes on disk ({@code st_blocks * 512}) */
    static long diskBytes(Path path) {
        int fd = Libc.open(path.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC);
        try {
            return Libc.fstatBlocks(fd) * 512;
        } finally {
            Libc.close(fd);
        }
    }
}
