package dev.panamax.vmm;

import java.nio.file.Path;

/**
 * A script the guest's init takes over its serial console ({@code panamax test --snapshot}; the guest side is the
 * images module's /init with {@code panamax.script=serial}): booting, the machine waits for the console line
 * {@value #READY_LINE}, saves a snapshot to {@code snapshotAtReady} if set, then sends the script; restoring,
 * it sends the script as soon as the vCPUs run (the snapshot was taken at that line). The bytes go base64-encoded
 * ({@link ScriptFeeder#frame}).
 *
 * @param snapshotAtReady where the snapshot taken at the ready line goes (a directory, published whole by a rename:
 *                        {@link dev.panamax.vmm.snapshot.SnapshotDirs#writeAtomically}), or {@code null} for none
 * @param scriptInput     the script's bytes (not copied: the caller leaves them alone)
 */
public record ReadyScript(Path snapshotAtReady, byte[] scriptInput) {
    /** The guest's line saying it is ready for a script (the images module's {@code ImageBuilder.READY_FOR_SCRIPT}). */
    public static final String READY_LINE = "panamax: ready for a script";
    /** The line after the script's base64 lines (the images module's {@code ImageBuilder.SCRIPT_END_LINE}). */
    public static final String END_LINE = "panamax-script-end";

    public ReadyScript {
        java.util.Objects.requireNonNull(scriptInput, "scriptInput");
    }
}
