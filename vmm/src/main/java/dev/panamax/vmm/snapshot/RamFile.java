package dev.panamax.vmm.snapshot;

import dev.panamax.core.sys.Errno;
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
 * <p>Reading reads only the file's data into guest RAM and skips its holes, so pages the guest never touched stay
 * untouched on the host too (fresh guest RAM reads as zeros already).
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
     * Reads {@code path} into {@code ram} (fresh guest RAM: zero), checking its size and checksum. Only the file's data
     * is read, straight into guest RAM ({@code pread}); its holes ({@code lseek} with {@code SEEK_DATA} and
     * {@code SEEK_HOLE}) are skipped, so the pages the guest never touched stay untouched on the host, and their
     * zeros only enter the checksum.
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
        int fd = Libc.open(path.toString(), Libc.O_RDONLY | Libc.O_CLOEXEC);
        try {
            long pos = 0;
            while (pos < size) {
                long data = Libc.lseekRaw(fd, pos, Libc.SEEK_DATA);
                if (data == -Errno.ENXIO) {
                    data = size; // only a hole is left
                } else if (data < 0) {
                    throw new IOException("lseek SEEK_DATA in " + path + ": " + Errno.name((int) -data));
                }
                data = Math.min(data, size);
                zeros(crc, data - pos);
                if (data == size) {
                    break;
                }
                long hole = Libc.lseekRaw(fd, data, Libc.SEEK_HOLE);
                if (hole < 0) {
                    throw new IOException("lseek SEEK_HOLE in " + path + ": " + Errno.name((int) -hole));
                }
                hole = Math.min(hole, size);
                for (long off = data; off < hole; ) {
                    MemorySegment into = ram.asSlice(off, Math.min(CHUNK, hole - off));
                    long n = Libc.preadRaw(fd, into, off);
                    if (n < 0 && n != -Errno.EINTR) {
                        throw new IOException("read of " + path + " at byte " + off + ": " + Errno.name((int) -n));
                    } else if (n == 0) {
                        throw new SnapshotException("snapshot RAM file " + path + " ended at byte " + off);
                    } else if (n > 0) {
                        crc.update(into.asSlice(0, n).asByteBuffer());
                        off += n;
                    }
                }
                pos = hole;
            }
        } finally {
            Libc.close(fd);
        }
        if (crc.getValue() != crc32c) {
            throw new SnapshotException(String.format("snapshot RAM file %s is damaged: CRC32C %08x, the manifest says %08x",
                    path, crc.getValue(), crc32c));
        }
    }

    /** Adds {@code count} zero bytes to {@code crc}. */
    private static void zeros(CRC32C crc, long count) {
        ByteBuffer zero = ZERO_CHUNK.asByteBuffer();
        while (count > 0) {
            int n = (int) Math.min(count, CHUNK);
            crc.update(zero.clear().limit(n));
            count -= n;
        }
    }

    /** Zeros (allocate zero-fills): a page to compare with, a chunk for the checksum of holes. */
    private static final MemorySegment ZERO_CHUNK = Arena.global().allocate(CHUNK, PAGE);
    private static final MemorySegment ZERO_PAGE = ZERO_CHUNK.asSlice(0, PAGE);

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
