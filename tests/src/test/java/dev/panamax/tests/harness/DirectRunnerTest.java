package dev.panamax.tests.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DirectRunnerTest {

    @TempDir
    Path dir;

    @Test
    void statusOutputDirectoryAndEnvironment() throws Exception {
        Result r = new DirectRunner().run(GuestCommand.of("pwd; echo \"$GREETING\"; echo oops >&2; exit 3")
                .in(dir).withEnv("GREETING", "it's here"));
        assertEquals(3, r.exitStatus());
        assertFalse(r.timedOut());
        assertEquals(dir.toRealPath() + "\nit's here\noops\n", r.output());
    }

    @Test
    void timeoutKillsTheCommand() throws Exception {
        long t0 = System.nanoTime();
        Result r = new DirectRunner().run(GuestCommand.of("echo started; sleep 30").withTimeout(Duration.ofMillis(500)));
        assertTrue(r.timedOut());
        assertEquals(Result.TIMED_OUT, r.exitStatus());
        assertEquals("started\n", r.output());
        assertTrue(System.nanoTime() - t0 < 20_000_000_000L, "took too long to kill");
    }
}
