package dev.panamax.tests.harness;

import java.time.Duration;
import java.util.Objects;

/**
 * What one command run by a {@link GuestRunner} gave back.
 *
 * @param exitStatus the command's exit status, 0 to 255 as the shell reports it (a command killed by
 *                   signal N reports 128 + N), or {@link #TIMED_OUT} when the runner killed it (and, in
 *                   nested mode, the whole L1 VM) because it ran past its timeout
 * @param output     what the command wrote to stdout and stderr, interleaved as it arrived, lines ended
 *                   by {@code '\n'} (the serial console's {@code "\r\n"} is normalised); in nested mode
 *                   only the part between the L1 init's begin and exit markers, without kernel boot noise
 *                   (if the command timed out: everything the console showed up to then)
 * @param elapsed    wall-clock time of the whole run; in nested mode this includes building the per-run
 *                   initramfs, booting L1 and powering it off
 */
public record Result(int exitStatus, String output, Duration elapsed) {

    /** The {@link #exitStatus} of a run killed at its timeout; no real exit status is negative. */
    public static final int TIMED_OUT = -1;

    public Result {
        Objects.requireNonNull(output, "output");
        Objects.requireNonNull(elapsed, "elapsed");
        if (exitStatus != TIMED_OUT && (exitStatus < 0 || exitStatus > 255)) {
            throw new IllegalArgumentException("exit status " + exitStatus + " is outside 0..255");
        }
    }

    /** True when the runner killed the command at its timeout. */
    public boolean timedOut() {
        return exitStatus == TIMED_OUT;
    }

    /** True when the command exited with status 0. */
    public boolean succeeded() {
        return exitStatus == 0;
    }
}
