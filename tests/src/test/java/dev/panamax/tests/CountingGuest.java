package dev.panamax.tests;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The guest that survives its VMM in {@link SnapshotEndToEndTest} and {@link MigrationEndToEndTest}: a script that
 * prints a count, its uptime and its boot id every half second ({@link #SCRIPT}); and the readers of a session's
 * output those tests, {@link VfioUserSnapshotEndToEndTest} and {@link TestSnapshotEndToEndTest} share.
 */
final class CountingGuest {
    /** The guest's script: about 500 s of counting, then exit 7 (no test waits for it). */
    static final String SCRIPT = """
            #!/bin/sh
            i=0
            while [ $i -lt 1000 ]; do
                echo "e2e-count $i up $(cut -d' ' -f1 /proc/uptime) boot $(cat /proc/sys/kernel/random/boot_id)"
                i=$((i+1))
                sleep 0.5
            done
            exit 7
            """;
    /**
     * A whole count line. The VMM's log lines go to the same file as the serial console, so one may land in the middle
     * of a count line and cut it in two; then neither half matches, since the boot id must be a whole UUID.
     */
    private static final Pattern COUNT = Pattern.compile(
            "e2e-count (\\d+) up ([0-9.]+) boot ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f-])");

    private CountingGuest() {
    }

    /** @return {count, uptime in centiseconds} of each count line of the lines with {@code prefix}, in order */
    static List<long[]> counts(String out, String prefix) {
        List<long[]> r = new ArrayList<>();
        for (String line : lines(out, prefix).split("\n")) {
            Matcher m = COUNT.matcher(line);
            if (m.find()) {
                r.add(new long[]{Long.parseLong(m.group(1)), Math.round(Double.parseDouble(m.group(2)) * 100)});
            }
        }
        return r;
    }

    /** @return the boot id of each count line of the lines with {@code prefix}, in order */
    static List<String> boots(String out, String prefix) {
        List<String> r = new ArrayList<>();
        for (String line : lines(out, prefix).split("\n")) {
            Matcher m = COUNT.matcher(line);
            if (m.find()) {
                r.add(m.group(3));
            }
        }
        return r;
    }

    /**
     * Asserts that the guest whose lines carry {@code before} went on in the process whose lines carry {@code after}
     * without booting again: its count continues (the first whole line after is the last whole one before, cut at the
     * pause, or one of the next two, since a log line may have cut one of them), it counts at least 10 more, every
     * line of both carries the same boot id, no uptime step between two lines (centiseconds) is negative or
     * {@code maxStepCentis} or more, and the second process never reaches the kernel's or the image's init.
     *
     * @param how "restored" or "migrated", for the messages
     */
    static void assertLivedOn(String out, String before, String after, long maxStepCentis, String how) {
        List<long[]> countsBefore = counts(out, before);
        List<long[]> countsAfter = counts(out, after);
        assertFalse(countsBefore.isEmpty() || countsAfter.isEmpty(), "no counts before or after the guest was " + how + ":\n" + out);
        long last = countsBefore.getLast()[0];
        long first = countsAfter.getFirst()[0];
        assertTrue(first >= last && first <= last + 2, "count went from " + last + " to " + first + ":\n" + out);
        assertTrue(countsAfter.getLast()[0] >= first + 10, "the " + how + " guest did not count on:\n" + out);
        List<String> boots = new ArrayList<>(boots(out, before));
        boots.addAll(boots(out, after));
        assertEquals(1, boots.stream().distinct().count(), "the boot id changed: the guest booted again\n" + out);
        List<long[]> all = new ArrayList<>(countsBefore);
        all.addAll(countsAfter);
        for (int i = 1; i < all.size(); i++) {
            long step = all.get(i)[1] - all.get(i - 1)[1];
            assertTrue(step >= 0 && step < maxStepCentis, "uptime went from " + all.get(i - 1)[1] + " to " + all.get(i)[1]
                    + " centiseconds at count " + all.get(i)[0] + ":\n" + out);
        }
        String second = lines(out, after);
        assertFalse(second.contains("panamax: init reached") || second.contains("Linux version"),
                "the " + how + " guest booted again:\n" + out);
    }

    /**
     * @return what follows {@code prefix} on each line of {@code out} that has it (the scripts mark each process's
     *         output with a prefix such as {@code run1: }), one per line
     */
    static String lines(String out, String prefix) {
        StringBuilder b = new StringBuilder();
        for (String line : out.split("\n")) {
            int i = line.indexOf(prefix);
            if (i >= 0) {
                b.append(line.substring(i + prefix.length())).append('\n');
            }
        }
        return b.toString();
    }
}
