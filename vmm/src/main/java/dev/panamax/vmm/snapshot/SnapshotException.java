package dev.panamax.vmm.snapshot;

/**
 * A snapshot that cannot be used: missing or damaged files, a format version this Panamax does not read, a machine
 * that does not match. The message is one line for the user.
 */
public final class SnapshotException extends RuntimeException {
    public SnapshotException(String message) {
        super(message);
    }

    public SnapshotException(String message, Throwable cause) {
        super(message, cause);
    }
}
