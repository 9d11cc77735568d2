package dev.panamax.tests;

import dev.panamax.tests.harness.GuestCommand;
import dev.panamax.tests.harness.GuestRunner;
import dev.panamax.tests.harness.Result;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One runner session of an end-to-end test: a shell script of several {@code panamax} runs, each ending with
 * {@code echo "E2E name=$?"}, run in the repository with {@code PANAMAX_NO_BUILD=1}, and what came out of it.
 *
 * @param result   the runner's result
 * @param statuses each {@code E2E name=N} line of the output, in order
 */
record E2eSession(Result result, Map<String, Integer> statuses) {
    /** HotSpot's first line when it dies of a fatal signal. */
    private static final String JVM_CRASH = "A fatal error has been detected by the Java Runtime Environment";

    /**
     * Runs {@code script} in {@code repo} (20 minutes at most) and prints what it measured: the session's time,
     * the statuses and each guest's time from process start to init.
     *
     * <p>Seen once in about 40 JVM runs inside the TCG-emulated L1: HotSpot died of SIGSEGV in C1-compiled code
     * near its class-data-sharing metadata, before Panamax's first line of output. We take it for the emulator,
     * not Panamax, and run the session once more ({@code beforeRerun} first, e.g. to restore a disk image); a
     * crash that comes back fails the test (the JVM leaves hs_err_pid*.log in the repository).
     */
    static E2eSession run(GuestRunner runner, Path repo, String script, Runnable beforeRerun)
            throws IOException, InterruptedException {
        makeAotCache(repo);
        GuestCommand command = GuestCommand.of(script).in(repo).withEnv("PANAMAX_NO_BUILD", "1")
                .withTimeout(Duration.ofMinutes(20));
        Result r = runner.run(command);
        if (r.output().contains(JVM_CRASH)) {
            System.out.println("measured: a JVM crashed in the runner session; running the session once more");
            beforeRerun.run();
            r = runner.run(command);
        } else if (r.timedOut()) {
            // Seen once in CI on a loaded 2-core machine: the emulated L1 went silent (no console line, not even
            // its kernel's hung-task warnings) for 15 minutes between two panamax runs. Taken for the emulator,
            // run once more; a second stall fails the test.
            System.out.println("measured: the runner session timed out after " + r.elapsed().toSeconds()
                    + " s; running it once more");
            beforeRerun.run();
            r = runner.run(command);
        }
        Map<String, Integer> statuses = new LinkedHashMap<>();
        Matcher m = Pattern.compile("E2E ([\\w-]+)=(\\d+)").matcher(r.output());
        while (m.find()) {
            statuses.put(m.group(1), Integer.parseInt(m.group(2)));
        }
        System.out.println("measured: whole session " + r.elapsed().toSeconds() + " s (" + runner.mode()
                + "); statuses " + statuses);
        Matcher init = Pattern.compile("guest init reached (\\d+) ms after process start").matcher(r.output());
        while (init.find()) {
            System.out.println("measured: process start to guest init " + init.group(1) + " ms (" + runner.mode() + ")");
        }
        return new E2eSession(r, statuses);
    }

    private static boolean aotTried;

    /**
     * Makes the JVM's AOT cache for this build ({@code scripts/lib.sh}'s {@code panamax_aot_train}), as
     * {@code ./panamax} does in the background on first use, so that the {@code panamax} runs in the session,
     * which must not build ({@code PANAMAX_NO_BUILD=1}), start with it: a JVM start costs a minute in the
     * emulated L1 under load. Without it they start the plain way.
     */
    private static synchronized void makeAotCache(Path repo) throws IOException, InterruptedException {
        if (aotTried) {
            return;
        }
        aotTried = true;
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder("bash", "-c", "source scripts/lib.sh && panamax_aot_train \"$(panamax_java_home)\"")
                .directory(repo.toFile()).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        boolean ended = p.waitFor(5, java.util.concurrent.TimeUnit.MINUTES);
        if (!ended) {
            p.destroyForcibly();
        }
        boolean made = java.nio.file.Files.isRegularFile(repo.resolve("launcher/target/panamax.aot"));
        System.out.println("measured: AOT cache for panamax " + (made ? "made" : "not made (plain JVM starts)")
                + " in " + (System.nanoTime() - t0) / 1_000_000 + " ms");
    }

    /** @return the session's output */
    String output() {
        return result.output();
    }
}
