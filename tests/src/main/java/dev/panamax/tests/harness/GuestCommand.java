package dev.panamax.tests.harness;

import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * A shell command for a {@link GuestRunner}: run as {@code sh -c script} in {@code workingDirectory} with
 * {@code environment} added to the runner's environment, killed after {@code timeout}.
 *
 * @param script           the text given to {@code sh -c} (on Debian {@code /bin/sh} is dash)
 * @param workingDirectory an absolute host path; in nested mode it must be visible in L1, which it is
 *                         unless it lies under {@code /tmp} (L1 puts a fresh tmpfs there)
 * @param environment      variables to add; names must match {@code [A-Za-z_][A-Za-z0-9_]*}
 * @param timeout          wall-clock limit for the whole run, L1 boot included
 */
public record GuestCommand(String script, Path workingDirectory, Map<String, String> environment, Duration timeout) {

    /** Default limit for one run: generous, as a TCG-emulated L1 running an L2 guest is slow. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(600);

    private static final Pattern NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    public GuestCommand {
        Objects.requireNonNull(script, "script");
        Objects.requireNonNull(workingDirectory, "workingDirectory");
        Objects.requireNonNull(timeout, "timeout");
        if (!workingDirectory.isAbsolute()) {
            throw new IllegalArgumentException("working directory " + workingDirectory + " is not absolute");
        }
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout " + timeout + " is not positive");
        }
        environment = Map.copyOf(new LinkedHashMap<>(environment));
        for (var e : environment.entrySet()) {
            if (!NAME.matcher(e.getKey()).matches()) {
                throw new IllegalArgumentException("environment variable name '" + e.getKey()
                        + "' is not a shell name ([A-Za-z_][A-Za-z0-9_]*)");
            }
            if (e.getValue().indexOf('\0') >= 0) {
                throw new IllegalArgumentException("environment variable " + e.getKey() + " contains a NUL byte");
            }
        }
        if (script.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("script contains a NUL byte");
        }
    }

    /** The script run in the current directory of this JVM, no extra environment, {@link #DEFAULT_TIMEOUT}. */
    public static GuestCommand of(String script) {
        return new GuestCommand(script, Path.of("").toAbsolutePath(), Map.of(), DEFAULT_TIMEOUT);
    }

    public GuestCommand in(Path directory) {
        return new GuestCommand(script, directory.toAbsolutePath(), environment, timeout);
    }

    public GuestCommand withEnv(String name, String value) {
        var env = new LinkedHashMap<>(environment);
        env.put(name, value);
        return new GuestCommand(script, workingDirectory, env, timeout);
    }

    public GuestCommand withTimeout(Duration limit) {
        return new GuestCommand(script, workingDirectory, environment, limit);
    }
}
