package dev.panamax.images;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Talks to the real apt (the machine's package lists and Debian's mirror). */
class DebianPackagesTest {

    @Test
    void kernelDependencyParsing() {
        assertEquals("linux-image-6.1.0-41-amd64=6.1.158-1",
                DebianPackages.kernelDependency("linux-image-6.1.0-41-amd64 (= 6.1.158-1)"));
        assertEquals("linux-image-6.1.0-41-amd64",
                DebianPackages.kernelDependency("foo, linux-image-6.1.0-41-amd64 (>= 6.1) | bar"));
        assertEquals("linux-image-6.1.0-41-amd64-unsigned",
                DebianPackages.kernelDependency("bar | baz, linux-image-6.1.0-41-amd64-unsigned"));
        assertNull(DebianPackages.kernelDependency("kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"));
        assertNull(DebianPackages.kernelDependency(""));
    }

    @Test
    void fetchDownloadsOnceAndRecordsVersionAndHash(@TempDir Path cache) throws IOException {
        Logger logger = (Logger) LoggerFactory.getLogger(DebianPackages.class);
        ListAppender<ILoggingEvent> events = new ListAppender<>();
        events.start();
        logger.addAppender(events);
        try {
            DebianPackages packages = new DebianPackages(cache);
            DebPackage first = packages.fetch("busybox-static");
            assertEquals("busybox-static", first.name());
            assertEquals(DebianPackages.field(first.file(), "Version"), first.version());
            assertTrue(first.version().matches("(\\d+:)?1\\.\\d+.*"), first.version());
            assertEquals(Hashes.sha256(first.file()), first.sha256());
            assertEquals(cache.resolve("debs"), first.file().getParent());
            assertTrue(events.list.stream().anyMatch(e -> e.getFormattedMessage().startsWith("downloading Debian package busybox-static")),
                    "a progress line while downloading");

            // A re-download would replace the file and so its mtime.
            FileTime marker = FileTime.fromMillis(1_000_000_000_000L);
            Files.setLastModifiedTime(first.file(), marker);
            events.list.clear();
            DebPackage second = packages.fetch("busybox-static");
            assertEquals(first, second);
            assertEquals(marker, Files.getLastModifiedTime(second.file()), "not downloaded again");
            assertTrue(events.list.stream().noneMatch(e -> e.getFormattedMessage().startsWith("downloading")));

            Path tree = packages.extract(first);
            assertTrue(Files.isRegularFile(tree.resolve("bin/busybox")) || Files.isRegularFile(tree.resolve("usr/bin/busybox")));
            assertEquals(tree, packages.extract(first), "extracted once, reused");
            try (var s = Files.list(cache.resolve("debs"))) {
                assertEquals(List.of(first.file()), s.toList(), "no temporary download directories left");
            }
        } finally {
            logger.detachAppender(events);
        }
    }

    @Test
    void unknownPackageIsOneClearLine(@TempDir Path cache) {
        DebianPackages packages = new DebianPackages(cache);
        var e = assertThrows(IllegalArgumentException.class, () -> packages.fetch("no-such-package-panamax"));
        assertTrue(e.getMessage().startsWith("unknown Debian package 'no-such-package-panamax'"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        var k = assertThrows(IllegalArgumentException.class, () -> packages.fetchKernel("linux-image-no-such-panamax"));
        assertTrue(k.getMessage().contains("'linux-image-no-such-panamax'"), k.getMessage());
    }

    @Test
    void malformedNamesAreRejectedBeforeApt(@TempDir Path cache) {
        DebianPackages packages = new DebianPackages(cache);
        for (String bad : new String[]{"-o", "Foo", "a b", "", "x;rm"}) {
            var e = assertThrows(IllegalArgumentException.class, () -> packages.fetch(bad), bad);
            assertEquals("invalid Debian package name '" + bad + "'", e.getMessage());
        }
        assertFalse(Files.exists(cache.resolve("debs")));
    }

    @Test
    void notADebIsAClearError(@TempDir Path tmp) throws IOException {
        Path fake = Files.writeString(tmp.resolve("fake.deb"), "not an ar archive");
        var e = assertThrows(IllegalStateException.class, () -> DebianPackages.field(fake, "Version"));
        assertTrue(e.getMessage().contains("fake.deb"), e.getMessage());
    }

    @Test
    void defaultCacheDirFollowsXdg() {
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path expected = xdg != null && !xdg.isBlank() ? Path.of(xdg, "panamax")
                : Path.of(System.getProperty("user.home"), ".cache", "panamax");
        assertEquals(expected, DebianPackages.defaultCacheDir());
    }
}
