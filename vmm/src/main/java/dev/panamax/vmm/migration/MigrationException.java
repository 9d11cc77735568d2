package dev.panamax.vmm.migration;

/**
 * A live migration that cannot go on: a peer that is gone, silent past a timeout, or sends what is not a Panamax
 * migration stream ({@link FrameChannel}). The message is one line for the user.
 */
public final class MigrationException extends RuntimeException {
    public MigrationException(String message) {
        super(message);
    }

    public MigrationException(String message, Throwable cause) {
        super(message, cause);
    }
}
