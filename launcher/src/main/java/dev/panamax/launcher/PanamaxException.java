package dev.panamax.launcher;

/**
 * An error the user can act on (a missing kernel, no KVM, a bad size): {@code panamax} prints its
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
