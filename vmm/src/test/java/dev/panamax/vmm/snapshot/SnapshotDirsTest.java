package dev.panamax.vmm.snapshot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SnapshotDirsTest {
    @Test
    void writeAtomicallyPublishesKeepsAnEarlierOneAndLeavesNoTemporary(@TempDir Path tmp) throws IOException {
        Path dir = tmp.resolve("cache/key");
        assertTrue(SnapshotDirs.writeAtomically(dir, d -> write(d, "first")));
        assertEquals("first", Files.readString(dir.resolve("f")));
        assertFalse(SnapshotDirs.writeAtomically(dir, d -> write(d, "second")));
        assertEquals("first", Files.readString(dir.resolve("f")));
        assertThrows(IllegalStateException.class, () -> SnapshotDirs.writeAtomically(tmp.resolve("cache/other"), d -> {
            write(d, "half");
            throw new IllegalStateException("writer failed");
        }));
        try (Stream<Path> s = Files.list(tmp.resolve("cache"))) {
            assertEquals(1, s.count(), "only the published directory is left");
        }
        SnapshotDirs.delete(dir);
        assertFalse(Files.exists(dir));
        SnapshotDirs.delete(dir); // nothing there: nothing to do
    }

    private static void write(Path d, String text) {
        try {
            Files.createDirectories(d);
            Files.writeString(d.resolve("f"), text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
