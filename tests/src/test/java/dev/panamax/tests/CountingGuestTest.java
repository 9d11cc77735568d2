package dev.panamax.tests;

import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The readers of {@link CountingGuest} on output as the nested runs print it, log lines cutting count lines included. */
class CountingGuestTest {
    private static final String BOOT = "56b47f19-4839-4ec9-b98c-8d6c37f4bebc";

    private static String line(String prefix, int count, String uptime, String boot) {
        return prefix + "e2e-count " + count + " up " + uptime + " boot " + boot + "\n";
    }

    /** What CI printed on 2026-12-02: the pause's log line landed inside count 39, between two halves of its boot id. */
    private static String cutAtThePause(String secondBoot) {
        return "run1: panamax: init reached\n"
                + line("run1: ", 37, "28.00", BOOT)
                + line("run1: ", 38, "28.60", BOOT)
                + "run1: e2e-count 39 up 29.20 boot 56b47f19-4839-4ec9-b98c-8dpanamax: control socket: pause\n"
                + "run1: 6c37f4bebc\n"
                + "run1: panamax: VM paused\n"
                + "run2: panamax: restored from /tmp/pmx-snap\n"
                + line("run2: ", 40, "30.27", secondBoot)
                + String.join("", java.util.stream.IntStream.range(41, 52)
                        .mapToObj(i -> line("run2: ", i, String.format(java.util.Locale.ROOT, "%.2f", 30.27 + (i - 40) * 0.6), secondBoot)).toList());
    }

    @Test
    void aCountLineCutByALogLineIsSkippedNotMisread() {
        String out = cutAtThePause(BOOT);
        assertEquals(38, CountingGuest.counts(out, "run1: ").getLast()[0]);
        assertEquals(java.util.List.of(BOOT, BOOT), CountingGuest.boots(out, "run1: "));
        CountingGuest.assertLivedOn(out, "run1: ", "run2: ", 500, "restored");
    }

    @Test
    void aSecondBootIsStillCaught() {
        String other = "11111111-2222-3333-4444-555555555555";
        AssertionFailedError e = assertThrows(AssertionFailedError.class,
                () -> CountingGuest.assertLivedOn(cutAtThePause(other), "run1: ", "run2: ", 500, "restored"));
        assertTrue(e.getMessage().startsWith("the boot id changed"), e.getMessage());
    }

    @Test
    void aCountThatRestartsOrSkipsIsCaught() {
        String restarted = line("run1: ", 38, "28.60", BOOT) + line("run2: ", 0, "28.70", BOOT);
        assertThrows(AssertionFailedError.class, () -> CountingGuest.assertLivedOn(restarted, "run1: ", "run2: ", 500, "x"));
        String skipped = line("run1: ", 38, "28.60", BOOT) + line("run2: ", 42, "28.70", BOOT);
        assertThrows(AssertionFailedError.class, () -> CountingGuest.assertLivedOn(skipped, "run1: ", "run2: ", 500, "x"));
    }

    @Test
    void anUptimeJumpIsCaught() {
        StringBuilder b = new StringBuilder(line("run1: ", 38, "28.60", BOOT));
        for (int i = 39; i < 52; i++) {
            b.append(line("run2: ", i, String.format(java.util.Locale.ROOT, "%.2f", 40.0 + i), BOOT));
        }
        AssertionFailedError e = assertThrows(AssertionFailedError.class,
                () -> CountingGuest.assertLivedOn(b.toString(), "run1: ", "run2: ", 500, "restored"));
        assertTrue(e.getMessage().startsWith("uptime went from 2860"), e.getMessage());
    }
}
