package dev.panamax.images;

import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveOutputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;
import org.apache.commons.compress.compressors.gzip.GzipCompressorOutputStream;
import org.apache.commons.compress.compressors.gzip.GzipParameters;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Collections;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.zip.Deflater;

/**
 * A reproducible Linux initramfs: a "newc" cpio archive (the SVR4 format with no CRC, magic {@code 070701},
 * see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst), optionally gzip-compressed.
 *
 * <p>Reproducibility rules: entries are written sorted by path ({@link String#compareTo} order; a parent
 * directory always sorts before its children, being a prefix of them), parent directories are created implicitly with mode 0755,
 * every entry has uid/gid 0, the same mtime ({@code SOURCE_DATE_EPOCH} if set, else 0), and inode numbers
 * 1, 2, 3... in archive order. The gzip header carries mtime 0, no file name and OS 255 (unknown).
 * Same inputs therefore give byte-identical archives (given the same zlib).
 *
 * <p>Paths are relative to the archive root ("bin/busybox", not "/bin/busybox"); a leading slash is
 * accepted and stripped, but "." / ".." / empty components are rejected.
 */
public final class Initramfs {

    /** The kind of one archive entry; its cpio file-type bits (S_IFDIR etc., from {@code <sys/stat.h>}). */
    public enum Kind {
        DIRECTORY(CpioConstants.C_ISDIR),
        FILE(CpioConstants.C_ISREG),
        SYMLINK(CpioConstants.C_ISLNK),
        CHAR_DEVICE(CpioConstants.C_ISCHR);

        final int typeBits;

        Kind(int typeBits) {
            this.typeBits = typeBits;
        }
    }

    /**
     * One entry. {@code data} holds the file contents or the symlink target (UTF-8), {@code source} a host
     * file read at write time (exactly one of the two for FILE, neither for DIRECTORY / CHAR_DEVICE).
     */
    private record Entry(String path, Kind kind, int mode, byte[] data, Path source, int rdevMajor, int rdevMinor) {
    }

    private final SortedMap<String, Entry> entries;
    private final long mtime;

    private Initramfs(SortedMap<String, Entry> entries, long mtime) {
        this.entries = Collections.unmodifiableSortedMap(new TreeMap<>(entries));
        this.mtime = mtime;
    }

    /** A new, empty builder whose mtime is {@link #defaultMtime()}. */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The mtime written into every entry: the {@code SOURCE_DATE_EPOCH} environment variable (seconds since
     * the epoch, see reproducible-builds.org/specs/source-date-epoch) if set, else 0.
     *
     * @throws IllegalArgumentException if SOURCE_DATE_EPOCH is set but is not a non-negative integer
     */
    public static long defaultMtime() {
        String epoch = System.getenv("SOURCE_DATE_EPOCH");
        if (epoch == null || epoch.isBlank()) {
            return 0;
        }
        try {
            long value = Long.parseLong(epoch.trim());
            if (value < 0 || value > 0xFFFF_FFFFL) {
                throw new NumberFormatException();
            }
            return value;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("SOURCE_DATE_EPOCH='" + epoch + "' is not a number of seconds in 0..2^32-1");
        }
    }

    /** The entry paths in archive order. */
    public java.util.List<String> paths() {
        return java.util.List.copyOf(entries.keySet());
    }

    /** The mtime (seconds since the epoch) written into every entry. */
    public long mtime() {
        return mtime;
    }

    /** The whole newc cpio archive, uncompressed, with its TRAILER!!! entry. */
    public byte[] toCpio() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            writeCpio(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** Writes the newc cpio archive to {@code out} (not closed). */
    public void writeCpio(OutputStream out) throws IOException {
        // Block size 4: the archive ends right after the trailer (padded to 4 bytes), nothing more.
        CpioArchiveOutputStream cpio = new CpioArchiveOutputStream(new NonClosing(out), CpioConstants.FORMAT_NEW, 4,
                StandardCharsets.UTF_8.name());
        long inode = 1;
        for (Entry e : entries.values()) {
            long size = switch (e.kind) {
                case FILE -> e.data != null ? e.data.length : Files.size(e.source);
                case SYMLINK -> e.data.length;
                case DIRECTORY, CHAR_DEVICE -> 0;
            };
            CpioArchiveEntry ce = new CpioArchiveEntry(CpioConstants.FORMAT_NEW, e.path, size);
            ce.setMode(e.kind.typeBits | e.mode);
            ce.setInode(inode++);
            ce.setUID(0);
            ce.setGID(0);
            ce.setNumberOfLinks(e.kind == Kind.DIRECTORY ? 2 : 1);
            ce.setTime(mtime);
            ce.setDeviceMaj(0);
            ce.setDeviceMin(0);
            ce.setRemoteDeviceMaj(e.rdevMajor);
            ce.setRemoteDeviceMin(e.rdevMinor);
            cpio.putArchiveEntry(ce);
            if (e.kind == Kind.FILE && e.source != null) {
                try (InputStream in = Files.newInputStream(e.source)) {
                    long copied = in.transferTo(cpio);
                    if (copied != size) {
                        throw new IOException("initramfs source " + e.source + " changed size while being archived");
                    }
                }
            } else if (e.data != null) {
                cpio.write(e.data);
            }
            cpio.closeArchiveEntry();
        }
        cpio.finish();
        cpio.close();
    }

    /**
     * Writes the gzip-compressed archive to {@code out}, through a temporary file in the same directory
     * that is renamed at the end (no half-written file on error).
     */
    public void writeGzip(Path out) throws IOException {
        Path dir = out.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + out.getFileName(), ".tmp");
        try {
            try (OutputStream file = Files.newOutputStream(tmp);
                 GzipCompressorOutputStream gz = new GzipCompressorOutputStream(file, gzipParameters())) {
                writeCpio(gz);
            }
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
            Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** The fixed gzip header and settings (RFC 1952 section 2.3: MTIME 0, OS 255 = unknown, level 9). */
    private static GzipParameters gzipParameters() {
        GzipParameters p = new GzipParameters();
        p.setCompressionLevel(Deflater.BEST_COMPRESSION);
        p.setModificationTime(0);
        p.setOperatingSystem(255);
        return p;
    }

    /** Checks and normalizes an archive path: strips a leading '/', rejects empty, "." and ".." components. */
    static String normalize(String path) {
        if (path == null) {
            throw new IllegalArgumentException("initramfs path is null");
        }
        String p = path;
        while (p.startsWith("/")) {
            p = p.substring(1);
        }
        while (p.endsWith("/")) {
            p = p.substring(0, p.length() - 1);
        }
        if (p.isEmpty()) {
            throw new IllegalArgumentException("initramfs path '" + path + "' names the archive root");
        }
        for (String part : p.split("/", -1)) {
            if (part.isEmpty() || part.equals(".") || part.equals("..")) {
                throw new IllegalArgumentException("initramfs path '" + path + "' has an empty, '.' or '..' component");
            }
        }
        if (p.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("initramfs path '" + path + "' contains a NUL byte");
        }
        return p;
    }

    private static int checkMode(String path, int mode) {
        if ((mode & ~07777) != 0) {
            throw new IllegalArgumentException("initramfs mode 0" + Integer.toOctalString(mode) + " for '" + path
                    + "' has bits outside 07777 (give permission bits only)");
        }
        return mode;
    }

    /** Collects entries; later {@link #build()} or the write shortcuts produce the archive. */
    public static final class Builder {
        private final TreeMap<String, Entry> entries = new TreeMap<>();
        private long mtime = defaultMtime();

        private Builder() {
        }

        /** Overrides the mtime (seconds since the epoch, 0..2^32-1) written into every entry. */
        public Builder mtime(long seconds) {
            if (seconds < 0 || seconds > 0xFFFF_FFFFL) {
                throw new IllegalArgumentException("initramfs mtime " + seconds + " is outside 0..2^32-1");
            }
            this.mtime = seconds;
            return this;
        }

        /**
         * A directory with permission bits {@code mode} (e.g. 0755). Declaring an existing directory again
         * (also an implicit parent) just sets its mode.
         *
         * @throws IllegalArgumentException if a non-directory entry already has this path
         */
        public Builder directory(String path, int mode) {
            String p = normalize(path);
            checkMode(p, mode);
            Entry old = entries.get(p);
            if (old != null && old.kind != Kind.DIRECTORY) {
                throw new IllegalArgumentException("initramfs path '" + p + "' is already a " + old.kind.name().toLowerCase());
            }
            parents(p);
            entries.put(p, new Entry(p, Kind.DIRECTORY, mode, null, null, 0, 0));
            return this;
        }

        /** A regular file with the given contents and permission bits (e.g. 0755 for a script). */
        public Builder file(String path, byte[] data, int mode) {
            String p = normalize(path);
            put(new Entry(p, Kind.FILE, checkMode(p, mode), data.clone(), null, 0, 0));
            return this;
        }

        /**
         * A regular file whose contents are read from the host file {@code source} when the archive is written.
         *
         * @throws IllegalArgumentException if {@code source} is not a readable regular file
         */
        public Builder file(String path, Path source, int mode) {
            String p = normalize(path);
            if (!Files.isRegularFile(source) || !Files.isReadable(source)) {
                throw new IllegalArgumentException("initramfs source '" + source + "' for '" + p + "' is not a readable regular file");
            }
            put(new Entry(p, Kind.FILE, checkMode(p, mode), null, source, 0, 0));
            return this;
        }

        /** A symbolic link at {@code path} pointing to {@code target} (stored verbatim, mode 0777). */
        public Builder symlink(String path, String target) {
            String p = normalize(path);
            if (target == null || target.isEmpty()) {
                throw new IllegalArgumentException("initramfs symlink '" + p + "' has an empty target");
            }
            put(new Entry(p, Kind.SYMLINK, 0777, target.getBytes(StandardCharsets.UTF_8), null, 0, 0));
            return this;
        }

        /** A character device node (e.g. dev/console: major 5, minor 1, see Documentation/admin-guide/devices.txt). */
        public Builder characterDevice(String path, int mode, int major, int minor) {
            String p = normalize(path);
            if (major < 0 || minor < 0) {
                throw new IllegalArgumentException("initramfs device '" + p + "' has a negative major/minor");
            }
            put(new Entry(p, Kind.CHAR_DEVICE, checkMode(p, mode), null, null, major, minor));
            return this;
        }

        /** Whether an entry (explicit or implicit directory) exists at {@code path}. */
        public boolean contains(String path) {
            return entries.containsKey(normalize(path));
        }

        /** The archive as collected so far (the builder stays usable). */
        public Initramfs build() {
            return new Initramfs(entries, mtime);
        }

        /** Shortcut for {@code build().toCpio()}. */
        public byte[] toCpio() {
            return build().toCpio();
        }

        /** Shortcut for {@code build().writeGzip(out)}. */
        public void writeGzip(Path out) throws IOException {
            build().writeGzip(out);
        }

        private void put(Entry e) {
            Entry old = entries.get(e.path);
            if (old != null) {
                throw new IllegalArgumentException("initramfs path '" + e.path + "' is added twice (already a "
                        + old.kind.name().toLowerCase().replace('_', ' ') + ")");
            }
            parents(e.path);
            entries.put(e.path, e);
        }

        /** Creates the missing parent directories of {@code p} with mode 0755; fails if a parent is not a directory. */
        private void parents(String p) {
            int slash = p.indexOf('/');
            while (slash >= 0) {
                String parent = p.substring(0, slash);
                Entry old = entries.get(parent);
                if (old == null) {
                    entries.put(parent, new Entry(parent, Kind.DIRECTORY, 0755, null, null, 0, 0));
                } else if (old.kind != Kind.DIRECTORY) {
                    throw new IllegalArgumentException("initramfs path '" + p + "' lies under '" + parent
                            + "', which is a " + old.kind.name().toLowerCase().replace('_', ' '));
                }
                slash = p.indexOf('/', slash + 1);
            }
        }
    }

    /** Keeps CpioArchiveOutputStream.close() from closing the caller's stream. */
    private static final class NonClosing extends java.io.FilterOutputStream {
        NonClosing(OutputStream out) {
            super(out);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
        }

        @Override
        public void close() throws IOException {
            flush();
        }
    }
}
