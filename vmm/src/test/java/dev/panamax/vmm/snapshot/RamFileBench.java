package dev.panamax.vmm.snapshot;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * How long {@link RamFile} takes to write and read a snapshot's guest RAM, by hand (not a test): {@code MiB} of RAM
 * (default 512) of which {@code percent} (default 16, what a booted busybox guest of 512 MiB had touched in
 * {@code SnapshotEndToEndTest}: 82 MiB) are non-zero pages spread over it, into {@code dir}. Run:
 * <pre>
 * java -cp vmm/target/classes:vmm/target/test-classes:vmm-core/target/classes:launcher/target/lib/'*' \
 *     dev.panamax.vmm.snapshot.RamFileBench [MiB] [percent] [dir]
 * </pre>
 */
public final class RamFileBench {
    private RamFileBench() {
    }

    public static void main(String[] args) throws Exception {
        long mib = args.length > 0 ? Long.parseLong(args[0]) : 512;
        int percent = args.length > 1 ? Integer.parseInt(args[1]) : 16;
        Path dir = Files.createTempDirectory(args.length > 2 ? Path.of(args[2]) : Path.of("/var/tmp"), "ramfile-bench");
        long bytes = mib << 20;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment ram = arena.allocate(bytes, RamFile.PAGE);
            Random r = new Random(42);
            for (long p = 0; p < bytes; p += RamFile.PAGE) {
                if (r.nextInt(100) < percent) {
                    for (int i = 0; i < RamFile.PAGE; i += 8) {
                        ram.set(JAVA_LONG, p + i, r.nextLong());
                    }
                }
            }
            for (int round = 0; round < 3; round++) {
                Path f = dir.resolve("ram" + round);
                long t0 = System.nanoTime();
                RamFile.Written w = RamFile.write(ram, f);
                long t1 = System.nanoTime();
                MemorySegment back = arena.allocate(bytes, RamFile.PAGE);
                RamFile.read(f, back, w.crc32c());
                long t2 = System.nanoTime();
                System.out.printf("ram-file: %d MiB, %d%% touched: write %d ms (%d MiB on disk), read %d ms%n", mib, percent,
                        (t1 - t0) / 1_000_000, w.diskBytes() >> 20, (t2 - t1) / 1_000_000);
                Files.delete(f);
            }
        } finally {
            Files.deleteIfExists(dir);
        }
    }
}
