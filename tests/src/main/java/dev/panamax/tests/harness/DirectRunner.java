package dev.panamax.tests.harness;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs commands on this host as {@code sh -c script}: for hosts with real hardware virtualization,
 * where the VMM under test can use this host's {@code /dev/kvm} itself.
 *
 * <p>stdout and stderr are merged, logged line by line at INFO (logger {@code dev.panamax.tests.harness.DirectRunner})
 * as they arrive, and returned in {@link Result#output()}.
 */
public final class DirectRunner implements GuestRunner {

    private static final Logger LOG = LoggerFactory.getLogger(DirectRunner.class);

    @Override
    public HostVirtualization.Mode mode() {
        return HostVirtualization.Mode.DIRECT;
    }

    @Override
    public Result run(GuestCommand command) throws IOException, InterruptedException {
        long start = System.nanoTime();
        var pb = new ProcessBuilder("sh", "-c", command.script())
                .directory(command.workingDirectory().toFile())
                .redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().putAll(command.environment());
        LOG.info("direct: sh -c {} (in {})", command.script(), command.workingDirectory());
        Process p = pb.start();
        var pump = new OutputPump("direct-output", p.getInputStream(), false, line -> LOG.info("| {}", line));
        boolean exited;
        try {
            exited = p.waitFor(command.timeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            kill(p);
            throw e;
        }
        if (!exited) {
            kill(p);
            p.waitFor(10, TimeUnit.SECONDS);
        }
        String output = join(pump.finish(10_000));
        Duration elapsed = Duration.ofNanos(System.nanoTime() - start);
        if (!exited) {
            LOG.warn("direct: killed after {} s (timeout {})", elapsed.toSeconds(), command.timeout());
            return new Result(Result.TIMED_OUT, output, elapsed);
        }
        return new Result(p.exitValue(), output, elapsed);
    }

    /**
     * Kills the shell, then what it started (listed before: once the shell is gone they are no longer its
     * descendants). In this order the shell cannot outlive a child and print "Killed" into the output.
     */
    private static void kill(Process p) {
        java.util.List<ProcessHandle> children = p.descendants().toList();
        p.destroyForcibly();
        children.forEach(ProcessHandle::destroyForcibly);
    }

    static String join(java.util.List<String> lines) {
        var sb = new StringBuilder();
        for (String l : lines) {
            sb.append(l).append('\n');
        }
        return sb.toString();
    }
}
