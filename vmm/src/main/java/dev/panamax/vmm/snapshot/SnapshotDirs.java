package dev.panamax.vmm.snapshot;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.function.Consumer;
import java.util.stream.Stream;

/** Snapshot directories as a cache keeps them: published whole by a rename, deleted whole. */
public final class SnapshotDirs {
    private SnapshotDirs() {
    }

    /**
     * Has {@code writer} write a snapshot into a fresh directory next to {@code dir}, then renames it to {@code dir}
     * ({@code rename(2)}, atomic on one file system): a reader never sees half a snapshot. If {@code dir} exists by
     * then (another process published first), the new one is deleted and the old one kept.
     *
     * @return whether this call published {@code dir}
     * @throws SnapshotException if the temporary directory cannot be made or renamed (nothing is left behind);
     *                           what {@code writer} throws passes through, the temporary directory deleted
     */
    public static boolean writeAtomically(Path dir, Consumer<Path> writer) {
        Path tmp = dir.resolveSibling("." + dir.getFileName() + ".tmp-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
        try {
            Files.createDirectories(dir.toAbsolutePath().getParent());
            writer.accept(tmp);
            try {
                Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
                return true;
            } catch (IOException e) {
                if (Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    return false; // ENOTEMPTY or EEXIST: published by another process meanwhile
                }
                throw e;
            }
        } catch (IOException e) {
            throw new SnapshotException("cannot publish snapshot " + dir + ": " + e.getMessage(), e);
        } finally {
            delete(tmp);
        }
    }

    /**
     * Deletes a directory tree, or a file; nothing if it does not exist.
     *
     * @throws UncheckedIOException if something in it cannot be deleted
     */
    public static void delete(Path dir) {
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + dir + ": " + e.getMessage(), e);
        }
    }
}
