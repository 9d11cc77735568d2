package dev.panamax.vmm.snapshot;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * A machine to restore ({@code Machine.restore}): from a {@link Snapshot} directory, or from a live migration's stream
 * ({@code dev.panamax.vmm.migration.IncomingMigration}). The restore calls {@link #loadRam}, then {@link #state()},
 * before any vCPU exists, then {@link #running()} once the vCPUs run.
 */
public interface SavedMachine {
    /** @return the machine's shape */
    SnapshotManifest.Machine machine();

    /** @return its assigned devices, which the restoring command line must name alike */
    List<SnapshotManifest.Device> devices();

    /**
     * Fills {@code ram} (fresh, zero guest RAM of {@link #machine()}'s size, host-mapping order).
     *
     * @throws RuntimeException with a one-line message ({@link SnapshotException}, or the migration's) if the data is
     *                          damaged or cannot be had: RAM is then partly written, throw the machine away
     */
    void loadRam(MemorySegment ram);

    /** @return the vCPUs', the VM's and the device models' state, checked; after {@link #loadRam} */
    MachineState state();

    /** @return where it comes from, for the log: a directory, a socket */
    String origin();

    /** @return the {@code MachineConfig} setting that named it, for messages: {@code restore} or {@code incoming} */
    default String setting() {
        return "restore";
    }

    /** The restored machine runs (its vCPU threads started). */
    default void running() {
    }
}
