package dev.panamax.images;

import org.apache.commons.compress.archivers.cpio.CpioArchiveEntry;
import org.apache.commons.compress.archivers.cpio.CpioArchiveInputStream;
import org.apache.commons.compress.archivers.cpio.CpioConstants;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

import static org.junit.jupiter.api.Assertions.*;

class InitramfsTest {

    /** One entry read back with commons-compress. */
    record Read(CpioArchiveEntry entry, byte[] data) {
    }

    static Map<String, Read> readCpio(InputStream in) throws IOException {
        Map<String, Read> out = new LinkedHashMap<>();
        try (CpioArchiveInputStream cpio = new CpioArchiveInputStream(in, StandardCharsets.UTF_8.name())) {
            CpioArchiveEntry e;
            while ((e = cpio.getNextEntry()) != null) {
                assertEquals(CpioConstants.FORMAT_NEW, e.getFormat(), "newc format for " + e.getName());
                assertNull(out.put(e.getName(), new Read(e, cpio.readAllBytes())), "duplicate " + e.getName());
            }
        }
        return out;
    }

    static Initramfs.Builder sample(Path hostFile) {
        return Initramfs.builder().mtime(1_700_000_000L)
                .file("usr/bin/hello", "echo hi\n".getBytes(StandardCharsets.UTF_8), 0755)
                .directory("etc", 0750)
                .file("/etc/motd", hostFile, 0644)
                .symlink("bin/sh", "/bin/busybox")
                .characterDevice("dev/console", 0600, 5, 1)
                .file("a-b", new byte[]{1, 2, 3}, 0600)
                .file("init", new byte[0], 0700);
    }

    @Test
    void roundTripNamesModesContentsOrderAndMtimes(@TempDir Path tmp) throws IOException {
        Path motd = Files.writeString(tmp.resolve("motd"), "welcome\n");
        Map<String, Read> entries = readCpio(new ByteArrayInputStream(sample(motd).toCpio()));

        List<String> names = new ArrayList<>(entries.keySet());
        assertEquals(List.of("a-b", "bin", "bin/sh", "dev", "dev/console", "etc", "etc/motd", "init",
                "usr", "usr/bin", "usr/bin/hello"), names, "sorted, with implicit parents");

        assertEquals(CpioConstants.C_ISREG | 0755, entries.get("usr/bin/hello").entry().getMode());
        assertEquals("echo hi\n", new String(entries.get("usr/bin/hello").data(), StandardCharsets.UTF_8));
        assertEquals(CpioConstants.C_ISDIR | 0750, entries.get("etc").entry().getMode(), "explicit directory mode");
        assertEquals(CpioConstants.C_ISDIR | 0755, entries.get("usr").entry().getMode(), "implicit parent mode");
        assertEquals(CpioConstants.C_ISREG | 0644, entries.get("etc/motd").entry().getMode());
        assertEquals("welcome\n", new String(entries.get("etc/motd").data(), StandardCharsets.UTF_8));
        assertEquals(CpioConstants.C_ISLNK | 0777, entries.get("bin/sh").entry().getMode());
        assertEquals("/bin/busybox", new String(entries.get("bin/sh").data(), StandardCharsets.UTF_8));
        CpioArchiveEntry console = entries.get("dev/console").entry();
        assertEquals(CpioConstants.C_ISCHR | 0600, console.getMode());
        assertEquals(5, console.getRemoteDeviceMaj());
        assertEquals(1, console.getRemoteDeviceMin());
        assertArrayEquals(new byte[]{1, 2, 3}, entries.get("a-b").data());
        assertEquals(0, entries.get("init").data().length);

        long inode = 1;
        for (Read r : entries.values()) {
            CpioArchiveEntry e = r.entry();
            assertEquals(1_700_000_000L, e.getLastModifiedDate().getTime() / 1000, "mtime of " + e.getName());
            assertEquals(0, e.getUID());
            assertEquals(0, e.getGID());
            assertEquals(inode++, e.getInode(), "inode of " + e.getName());
            assertEquals(e.isDirectory() ? 2 : 1, e.getNumberOfLinks());
        }
    }

    @Test
    void archiveIsNewcWithTrailer() {
        byte[] cpio = Initramfs.builder().mtime(0).file("x", new byte[]{42}, 0644).toCpio();
        assertEquals("070701", new String(cpio, 0, 6, StandardCharsets.US_ASCII));
        String text = new String(cpio, StandardCharsets.ISO_8859_1);
        assertTrue(text.contains("TRAILER!!!"));
        assertEquals(0, cpio.length % 4, "4-byte aligned");
        // header field c_mtime (the 6th 8-hex-digit field) is 0
        assertEquals("00000000", text.substring(6 + 5 * 8, 6 + 6 * 8));
    }

    @Test
    void sameInputsGiveSameBytes(@TempDir Path tmp) throws IOException {
        Path motd = Files.writeString(tmp.resolve("motd"), "welcome\n");
        assertArrayEquals(sample(motd).toCpio(), sample(motd).toCpio());
        // insertion order does not matter
        byte[] a = Initramfs.builder().mtime(0).file("b", new byte[]{1}, 0644).file("a", new byte[]{2}, 0644).toCpio();
        byte[] b = Initramfs.builder().mtime(0).file("a", new byte[]{2}, 0644).file("b", new byte[]{1}, 0644).toCpio();
        assertArrayEquals(a, b);
        // and a real difference shows
        byte[] c = Initramfs.builder().mtime(0).file("a", new byte[]{2}, 0600).file("b", new byte[]{1}, 0644).toCpio();
        assertNotEquals(Hashes.sha256(a), Hashes.sha256(c));

        Path g1 = tmp.resolve("one.cpio.gz");
        Path g2 = tmp.resolve("two.cpio.gz");
        sample(motd).writeGzip(g1);
        sample(motd).writeGzip(g2);
        assertEquals(Hashes.sha256(g1), Hashes.sha256(g2));
        try (Stream s = new Stream(tmp)) {
            assertEquals(List.of("motd", "one.cpio.gz", "two.cpio.gz"), s.names(), "no temporary files left");
        }
    }

    /** Lists a directory's names, sorted. */
    record Stream(Path dir) implements AutoCloseable {
        List<String> names() throws IOException {
            try (var s = Files.list(dir)) {
                return s.map(p -> p.getFileName().toString()).sorted().toList();
            }
        }

        @Override
        public void close() {
        }
    }

    @Test
    void gzipHasFixedHeaderAndDecompressesToTheCpio(@TempDir Path tmp) throws IOException {
        Path motd = Files.writeString(tmp.resolve("motd"), "welcome\n");
        Path gz = tmp.resolve("i.cpio.gz");
        sample(motd).writeGzip(gz);
        byte[] bytes = Files.readAllBytes(gz);
        // RFC 1952: ID1 ID2 CM=8 FLG=0 MTIME=0 XFL OS=255
        assertEquals(0x1f, bytes[0] & 0xff);
        assertEquals(0x8b, bytes[1] & 0xff);
        assertEquals(8, bytes[2]);
        assertEquals(0, bytes[3], "no FNAME/FCOMMENT/FEXTRA");
        assertArrayEquals(new byte[4], java.util.Arrays.copyOfRange(bytes, 4, 8), "MTIME 0");
        assertEquals(255, bytes[9] & 0xff, "OS unknown");
        try (InputStream in = new GZIPInputStream(Files.newInputStream(gz))) {
            assertArrayEquals(sample(motd).toCpio(), in.readAllBytes());
        }
    }

    @Test
    void defaultMtimeFollowsSourceDateEpoch() {
        String env = System.getenv("SOURCE_DATE_EPOCH");
        long expected = env == null || env.isBlank() ? 0 : Long.parseLong(env.trim());
        assertEquals(expected, Initramfs.defaultMtime());
        assertEquals(expected, Initramfs.builder().build().mtime());
    }

    @Test
    void badPathsAndModesAreRejected() {
        Initramfs.Builder b = Initramfs.builder();
        for (String bad : new String[]{"", "/", "a/../b", "..", "./a", "a//b", "a/./b"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.file(bad, new byte[0], 0644), bad);
            assertTrue(e.getMessage().contains("'" + bad + "'"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> b.file("x", new byte[0], 0100644));
        assertThrows(IllegalArgumentException.class, () -> b.directory("x", -1));
        assertEquals("a/b", Initramfs.normalize("/a/b/"));
    }

    @Test
    void conflictsAreRejected(@TempDir Path tmp) {
        Initramfs.Builder b = Initramfs.builder().file("a/b", new byte[0], 0644);
        var twice = assertThrows(IllegalArgumentException.class, () -> b.file("a/b", new byte[1], 0644));
        assertEquals("initramfs path 'a/b' is added twice (already a file)", twice.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.symlink("a", "x"), "a is an implicit directory");
        var under = assertThrows(IllegalArgumentException.class, () -> b.file("a/b/c", new byte[0], 0644));
        assertTrue(under.getMessage().contains("lies under 'a/b'"), under.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.directory("a/b", 0755));
        b.directory("a", 0700); // re-declaring a directory sets its mode
        var missing = assertThrows(IllegalArgumentException.class, () -> b.file("m", tmp.resolve("nope"), 0644));
        assertTrue(missing.getMessage().contains("nope"), missing.getMessage());
        assertThrows(IllegalArgumentException.class, () -> b.file("d", tmp, 0644), "a directory is not a file source");
        assertThrows(IllegalArgumentException.class, () -> b.symlink("l", ""));
    }

    @Test
    void emptyArchiveIsJustTheTrailer() throws IOException {
        byte[] cpio = Initramfs.builder().toCpio();
        assertTrue(readCpio(new ByteArrayInputStream(cpio)).isEmpty());
        assertTrue(new String(cpio, StandardCharsets.ISO_8859_1).contains("TRAILER!!!"));
    }
}
