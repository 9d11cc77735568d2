package dev.panamax.tests.harness;

import java.nio.file.Path;

import java.io.IOException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a shell command where a working {@code /dev/kvm} is available: on this host when it has real
 * hardware virtualization ({@link DirectRunner}), otherwise inside a nested L1 VM ({@link NestedHarness}).
 *
 * <p>End-to-end tests write their check as a shell command (typically {@code java -cp ... SomeMain}) and
 * hand it to {@link #select()}'s runner; the same test then runs on a developer's laptop with VT-x/AMD-V
 * and on a CI machine without any KVM. Set {@code PANAMAX_TEST_MODE=direct|nested} to force either.
 */
public interface GuestRunner {

    /**
     * Runs {@code command} and waits for it (at most its timeout).
     *
     * @return the exit status and output; {@link Result#TIMED_OUT} if it was killed at its timeout
     * @throws IOException              if the command (or QEMU) cannot be started
     * @throws NestedHarnessException   in nested mode, if L1 died before reporting the command's status
     * @throws InterruptedException     if this thread was interrupted while waiting (the run is killed)
     */
    Result run(GuestCommand command) throws IOException, InterruptedException;

    /** Shorthand for {@code run(GuestCommand.of(script))}. */
    default Result run(String script) throws IOException, InterruptedException {
        return run(GuestCommand.of(script));
    }

    /** The mode this runner runs in. */
    HostVirtualization.Mode mode();

    /**
     * The runner for this host: {@link HostVirtualization#probe()} and {@code PANAMAX_TEST_MODE}
     * decide (see {@link HostVirtualization#chooseMode(String)}); nested mode uses
     * {@link NestedHarness#builder()}'s defaults.
     *
     * @throws IllegalStateException if direct mode is forced on a host without usable KVM, or nested mode
     *                               is needed and its kernel/busybox/QEMU are missing (message says which)
     */
    static GuestRunner select() {
        return select(new Path[0]);
    }

    /**
     * As {@link #select()}, with host directories the command may write: in nested mode they are shared into L1
     * read-write ({@link NestedHarness.Builder#writable}); directly, they are writable anyway.
     */
    static GuestRunner select(Path... writable) {
        return select(b -> { }, writable);
    }

    /**
     * As {@link #select(Path...)}, with {@code nested} applied to the L1's builder in nested mode (e.g. its CPU
     * count); directly, it is not used.
     */
    static GuestRunner select(java.util.function.Consumer<NestedHarness.Builder> nested, Path... writable) {
        Logger log = LoggerFactory.getLogger(GuestRunner.class);
        HostVirtualization host = HostVirtualization.probe();
        HostVirtualization.Mode mode = host.chooseMode(System.getenv(HostVirtualization.MODE_VARIABLE));
        log.info("host: {}; running guest commands {}", host.describe(), mode == HostVirtualization.Mode.DIRECT
                ? "directly" : "nested in an L1 VM under QEMU TCG");
        return switch (mode) {
            case DIRECT -> new DirectRunner();
            case NESTED -> {
                NestedHarness.Builder b = NestedHarness.builder();
                for (Path p : writable) {
                    b.writable(p);
                }
                nested.accept(b);
                yield b.build();
            }
        };
    }
}
