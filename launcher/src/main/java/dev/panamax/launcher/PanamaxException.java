package dev.panamax.launcher;

import dev.panamax.vmm.Verdict;

/**
 * An error in what the user gave the {@code panamax} command (a missing script, a bad {@code --device}): it prints its
 * message as one line and exits with {@link Verdict#ERROR_STATUS}, without a stack trace unless
 * {@code --debug} is given.
 */
public class PanamaxException extends RuntimeException {
    public PanamaxException(String message) {
        super(message);
    }

    public PanamaxException(String message, Throwable cause) {
        super(message, cause);
    }
}
