package dev.panamax.core.state;

/** A saved state that cannot be restored: truncated, from another version, or with a value out of range. */
public final class StateException extends RuntimeException {
    public StateException(String message) {
        super(message);
    }

    public StateException(String message, Throwable cause) {
        super(message, cause);
    }
}
