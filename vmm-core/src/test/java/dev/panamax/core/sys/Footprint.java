package dev.panamax.core.sys;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a process holds that a leak makes grow, for the soaks (issue 15): open fds ({@code /proc/self/fd}, less the
 * listing's own), live Java threads ({@link Thread#getAllStackTraces()}: the JVM's own compiler and GC threads, which
 * come and go by load, are not counted), memfds (fds whose link names {@code /memfd:}) and the resident set
 * ({@code VmRSS} of {@code /proc/self/status}, proc(5)). Shared through vmm-core's test jar.
 *
 * @param fds     open file descriptors
 * @param threads live Java threads
 * @param memfds  open memfds (a subset of {@code fds})
 * @param rssKiB  resident set size in KiB
 */
public record Footprint(int fds, int threads, int memfds, long rssKiB) {
    private static final Pattern LINE = Pattern.compile("footprint fds=(\\d+) threads=(\\d+) memfds=(\\d+) rss_kib=(\\d+)");

    /**
     * How far a footprint may be above the one taken after warm-up once a soak is over.
     *
     * @param fds     more open fds allowed
     * @param threads more live threads allowed
     * @param memfds  more memfds allowed
     * @param rssKiB  more resident KiB allowed
     */
    public record Bounds(int fds, int threads, int memfds, long rssKiB) {
        /**
         * The soaks' bounds. Fds, threads, memfds: +2, not 0, because the JVM itself may open a jar or log file, or
         * start a helper thread (Common-Cleaner's, a JIT-triggered one), between two samples; a leak of one per cycle
         * shows as +50 or +200, far beyond. RSS: +32 MiB, the heap the collector may keep after {@code System.gc()}
         * and code the JIT compiled during the run; a soak guest's 2 MiB or a DMA memfd's 64 KiB leaked per cycle
         * grows it by 100s of MiB, and unmapped memfds also show as fds.
         */
        public static final Bounds SOAK = new Bounds(2, 2, 2, 32 << 10);
    }

    /** Takes this process's footprint now (no garbage collection first; see {@link #afterGc}). */
    public static Footprint sample() {
        int fds = 0;
        int memfds = 0;
        for (String target : OpenFds.byNumber().values()) {
            fds++;
            if (target.startsWith("/memfd:")) {
                memfds++;
            }
        }
        return new Footprint(fds, Thread.getAllStackTraces().size(), memfds, rssKiB(Path.of("/proc/self/status")));
    }

    /**
     * Collects garbage twice, with a pause for the cleaner thread (auto arenas, closed fds of unreachable
     * objects), then samples: the soaks' "settled" footprint.
     */
    public static Footprint afterGc() {
        for (int i = 0; i < 2; i++) {
            System.gc();
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return sample();
    }

    /** @return the {@code VmRSS} of a proc(5) status file, in KiB */
    static long rssKiB(Path status) {
        try {
            for (String line : Files.readAllLines(status)) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.substring(6).trim().split("\\s+")[0]);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new IllegalStateException("no VmRSS line in " + status);
    }

    /**
     * @return one line per count of {@code after} that is beyond this footprint plus {@code bounds}, e.g.
     * {@code "fds 12->40 (bound +2)"}; empty when all are within
     */
    public List<String> exceeded(Footprint after, Bounds bounds) {
        List<String> out = new ArrayList<>();
        if (after.fds > fds + bounds.fds()) {
            out.add("fds " + fds + "->" + after.fds + " (bound +" + bounds.fds() + ")");
        }
        if (after.threads > threads + bounds.threads()) {
            out.add("threads " + threads + "->" + after.threads + " (bound +" + bounds.threads() + ")");
        }
        if (after.memfds > memfds + bounds.memfds()) {
            out.add("memfds " + memfds + "->" + after.memfds + " (bound +" + bounds.memfds() + ")");
        }
        if (after.rssKiB > rssKiB + bounds.rssKiB()) {
            out.add("rss " + mib(rssKiB) + "->" + mib(after.rssKiB) + " MiB (bound +" + mib(bounds.rssKiB()) + " MiB)");
        }
        return out;
    }

    /** @return {@code "fds 12->12, threads 9->9, memfds 0->0, rss 61->63 MiB"}: this footprint, then {@code after} */
    public String change(Footprint after) {
        return "fds " + fds + "->" + after.fds + ", threads " + threads + "->" + after.threads + ", memfds " + memfds + "->"
                + after.memfds + ", rss " + mib(rssKiB) + "->" + mib(after.rssKiB) + " MiB";
    }

    private static long mib(long kib) {
        return Math.round(kib / 1024.0);
    }

    /** @return this footprint as one line that {@link #parse} reads back (a child process reports with it) */
    public String line() {
        return "footprint fds=" + fds + " threads=" + threads + " memfds=" + memfds + " rss_kib=" + rssKiB;
    }

    /**
     * @param line a line containing what {@link #line()} wrote
     * @throws IllegalArgumentException if it contains none
     */
    public static Footprint parse(String line) {
        Matcher m = LINE.matcher(line);
        if (!m.find()) {
            throw new IllegalArgumentException("not a footprint line: " + line);
        }
        return new Footprint(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                Long.parseLong(m.group(4)));
    }
}
