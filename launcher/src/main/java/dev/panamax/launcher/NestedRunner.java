package dev.panamax.launcher;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * Runs a shell command inside a nested L1 Linux VM whose {@code /dev/kvm} works, for hosts that
 * have no usable KVM. The tests module provides it (its {@code NestedHarness}, found through
 * {@link ServiceLoader}), so that {@code panamax test --nested} and {@code panamax demo} use the very
 * harness the end-to-end tests use.
 */
public interface NestedRunner {
    /**
     * Runs {@code command} with {@code sh -c} in {@code directory} inside L1 (the host's root is seen
     * there read-only, {@code /tmp} is empty and writable).
     *
     * @param environment extra environment variables
     * @param timeout     when to kill L1
     * @param interactive whether L1's console is this terminal (input too) rather than captured
     * @return the command's exit status, or -1 if it was killed at the timeout
     * @throws IOException if QEMU cannot be started or L1 died before reporting the status
     */
    int run(String command, Path directory, Map<String, String> environment, Duration timeout, boolean interactive)
            throws IOException, InterruptedException;

    /**
     * @return the runner on the class path
     * @throws PanamaxException if there is none (the tests module's jar is missing)
     */
    static NestedRunner load() {
        return ServiceLoader.load(NestedRunner.class).findFirst().orElseThrow(() -> new PanamaxException(
                "the nested runner is not on the class path (tests/target/lib/tests.jar); build with 'mvn package'"));
    }
}
