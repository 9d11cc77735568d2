package dev.panamax.tests.harness;

import dev.panamax.launcher.NestedRunner;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

/**
 * The launcher's {@link NestedRunner} ({@code panamax test --nested}, {@code panamax demo} on a host
 * without KVM), served by {@link NestedHarness}: users get the very L1 VM the end-to-end tests use.
 * Registered in {@code META-INF/services}.
 */
public final class PanamaxNestedRunner implements NestedRunner {
    @Override
    public int run(String command, Path directory, Map<String, String> environment, Duration timeout, boolean interactive)
            throws IOException, InterruptedException {
        GuestCommand c = GuestCommand.of(command).in(directory).withTimeout(timeout);
        for (Map.Entry<String, String> e : environment.entrySet()) {
            c = c.withEnv(e.getKey(), e.getValue());
        }
        NestedHarness harness = NestedHarness.builder().build();
        if (interactive) {
            return harness.runInteractive(c);
        }
        return harness.run(c).exitStatus(); // the console was logged line by line as it came
    }
}
