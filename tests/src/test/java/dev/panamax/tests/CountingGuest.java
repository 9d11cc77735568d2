package dev.panamax.tests;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

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
    private static final Pattern COUNT = Pattern.compile("e2e-count (\\d+) up ([0-9.]+) boot ([0-9a-f-]+)");

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
