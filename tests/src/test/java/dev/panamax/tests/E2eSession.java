package dev.panamax.tests;

import dev.panamax.tests.harness.GuestCommand;
import dev.panamax.tests.harness.GuestRunner;
import dev.panamax.tests.harness.HostVirtualization;
import dev.panamax.tests.harness.NestedHarnessException;
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
    /** Panamax's line when a vCPU of its guest triple-faults ({@code KVM_EXIT_SHUTDOWN}). */
    private static final String L2_TRIPLE_FAULT = "(KVM_EXIT_SHUTDOWN: triple fault)";
    /** Panamax's line at a timeout for a vCPU that never once left {@code KVM_RUN} ({@code Machine.reportTimeout}). */
    private static final Pattern L2_NO_EXIT = Pattern.compile("at the timeout vCPU \\d+ was at rip 0x[0-9a-f]+, [a-z (),]+, after 0 exits");

    /**
     * Runs {@code script} in {@code repo} (20 minutes at most per try) and prints what it measured: the session's time,
     * the statuses and each guest's time from process start to init.
     *
     * <p>The emulated L1 of a nested run (QEMU TCG with emulated SVM) has faults of its own, each seen in CI or in
     * probes on loaded 2-core machines with code that passes elsewhere; on one of them the session runs once more
     * ({@code beforeRerun} first, e.g. to restore a disk image), and a fault that comes back fails the test:
     * <ul>
     *   <li>HotSpot died in C1-compiled code before Panamax's first line: SIGSEGV near its class-data-sharing
     *       metadata (once in about 40 JVM runs), SIGILL in {@code Unsafe.toUnsignedInt} (once, 2026-12-01); the JVM
     *       leaves hs_err_pid*.log in the repository where it can write;</li>
     *   <li>L1 went silent (no console line, not even its kernel's hung-task warnings) until the timeout;</li>
     *   <li>L1's own kernel died inside {@code KVM_RUN} of an L2 guest (2026-12-01: "stack guard page was hit",
     *       page faults recursing in {@code exc_page_fault} on a per-CPU read right after a {@code #VMEXIT}: the
     *       emulated world switch lost L1's state);</li>
     *   <li>an L2 guest triple-faulted early in its boot, 2 of 12 boots in two CI runs, at varying places and
     *       never on hardware KVM: taken for the same lost state. Nested only; run directly, a triple fault fails
     *       the test at once;</li>
     *   <li>an L2 guest ran until its timeout without a single exit to the VMM, so without ever reaching a device
     *       or its serial port (2026-12-02, twice in two CI runs, both in {@code VfioUserBlkEndToEndTest}: the
     *       VMM's timeout line "vCPU 0 was at rip 0xffffffffc04ce20c, runnable, after 0 exits", 300 s after the
     *       start). Nested only, as the triple fault.</li>
     * </ul>
     */
    static E2eSession run(GuestRunner runner, Path repo, String script, Runnable beforeRerun)
            throws IOException, InterruptedException {
        return run(runner, repo, script, beforeRerun, Duration.ofMinutes(20));
    }

    /** {@link #run(GuestRunner, Path, String, Runnable)} with {@code timeout} for each try of the session. */
    static E2eSession run(GuestRunner runner, Path repo, String script, Runnable beforeRerun, Duration timeout)
            throws IOException, InterruptedException {
        makeAotCache(repo);
        GuestCommand command = GuestCommand.of(script).in(repo).withEnv("PANAMAX_NO_BUILD", "1")
                .withTimeout(timeout);
        Result r;
        String fault;
        try {
            r = runner.run(command);
            fault = emulatorFault(runner.mode(), r);
        } catch (NestedHarnessException e) {
            if (!l1KernelDied(e.console())) {
                throw e;
            }
            r = null;
            fault = "the emulated L1's kernel died while the command ran";
        }
        if (fault != null) {
            System.out.println("measured: " + fault + "; running the session once more");
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

    /** @return why the session's result looks like a fault of the emulator rather than of Panamax, or null */
    static String emulatorFault(HostVirtualization.Mode mode, Result r) {
        if (r.output().contains(JVM_CRASH)) {
            return "a JVM crashed in the runner session";
        }
        if (r.timedOut()) {
            return "the runner session timed out after " + r.elapsed().toSeconds() + " s";
        }
        if (mode == HostVirtualization.Mode.NESTED && r.output().contains(L2_TRIPLE_FAULT)) {
            return "an L2 guest triple-faulted under the emulated L1";
        }
        if (mode == HostVirtualization.Mode.NESTED && L2_NO_EXIT.matcher(r.output()).find()) {
            return "an L2 guest ran to its timeout without one exit under the emulated L1";
        }
        return null;
    }

    /** @return whether the console of an L1 that ended without reporting its status shows a kernel oops or panic */
    static boolean l1KernelDied(java.util.List<String> console) {
        return console.stream().anyMatch(l -> l.contains("Kernel panic - not syncing") || l.contains("BUG: ")
                || l.contains("stack guard page was hit"));
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
