package dev.panamax.vmm.api;

import java.nio.file.Path;

/**
 * What the control socket ({@code --api-socket}) can ask of a running machine (issue 17). Each call returns when
 * done or throws {@link ControlException} with the one-line reason the reply carries; the VM keeps running after a
 * failed call (a snapshot that failed resumes the vCPUs it paused).
 */
public interface VmControl {
    /** What {@code status} replies. */
    record Status(String state, int cpus, long memoryBytes, long uptimeMillis) {
        /** The states: {@code running}, {@code paused}. */
        public static final String RUNNING = "running", PAUSED = "paused";
    }

    /**
     * What {@code snapshot} replies: where, the guest RAM saved (bytes), what the files take on disk (bytes; the RAM
     * file is sparse), and how long the vCPUs stood still for it (milliseconds).
     */
    record SnapshotResult(Path dir, long ramBytes, long diskBytes, long pausedMillis) {
    }

    /**
     * What {@code migrate} replies.
     *
     * @param downtimeMillis from the source's pause to the destination's "running", milliseconds
     * @param rounds         RAM rounds, the last (paused) one included
     * @param bytesSent      guest RAM sent in all rounds, bytes
     * @param totalMillis    the whole migration, milliseconds
     */
    record MigrationResult(Path socket, long downtimeMillis, int rounds, long bytesSent, long totalMillis) {
    }

    Status status();

    /** Stops every vCPU at an instruction boundary (pending port and MMIO accesses completed); idempotent. */
    void pause();

    /** Runs the vCPUs again; idempotent. */
    void resume();

    /**
     * Writes a snapshot of the VM to {@code dir} (created if missing; it must hold no snapshot), pausing the VM for it and
     * leaving it as it was (running or paused) afterwards.
     */
    SnapshotResult snapshot(Path dir);

    /**
     * Live migration to a destination waiting with {@code --incoming unix:SOCKET}; the source exits 0 once the
     * destination runs (after this call's reply). On failure the VM runs on here.
     */
    MigrationResult migrate(Path socket);

    /** A request that could not be done, with the reason for the reply; the VM keeps running. */
    final class ControlException extends RuntimeException {
        public ControlException(String message) {
            super(message);
        }

        public ControlException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
