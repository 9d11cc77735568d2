package dev.panamax.vmm;

/**
 * How a VM ended, and the exit status {@code panamax} returns for it.
 *
 * <table>
 * <caption>Exit statuses</caption>
 * <tr><td>the guest wrote N to the exit port (0xF4)</td><td>N (0..255)</td></tr>
 * <tr><td>the guest reset or powered off without a verdict</td><td>0</td></tr>
 * <tr><td>the VM migrated away and runs at the destination ({@code migrate})</td><td>0</td></tr>
 * <tr><td>the guest kernel panicked, or its CPU triple-faulted without {@code reboot=t}</td><td>{@value #PANIC_STATUS}</td></tr>
 * <tr><td>the guest ran past its timeout ({@link MachineConfig#timeout()})</td><td>{@value #TIMEOUT_STATUS}</td></tr>
 * <tr><td>Panamax could not run the VM (bad input, no KVM, a vCPU error)</td><td>{@value #ERROR_STATUS}</td></tr>
 * </table>
 *
 * @param kind       what happened
 * @param exitStatus the process exit status for it
 * @param detail     one line for the user
 */
public record Verdict(Kind kind, int exitStatus, String detail) {
    /** Exit status for a guest kernel panic or crash (a triple fault the guest did not ask for). */
    public static final int PANIC_STATUS = 110;
    /** Exit status for a guest killed at its timeout (as {@code timeout(1)}). */
    public static final int TIMEOUT_STATUS = 124;
    /** Exit status when Panamax itself fails (as {@code timeout(1)} for its own errors). */
    public static final int ERROR_STATUS = 125;

    /** What ended the VM. */
    public enum Kind { GUEST_EXIT, RESET, POWER_OFF, MIGRATED, PANIC, TIMEOUT, ERROR }

    public static Verdict guestExit(int status) {
        return new Verdict(Kind.GUEST_EXIT, status, "guest exited with status " + status + " (exit port)");
    }

    public static Verdict reset(String how) {
        return new Verdict(Kind.RESET, 0, "guest reset (" + how + ")");
    }

    public static Verdict powerOff(String how) {
        return new Verdict(Kind.POWER_OFF, 0, "guest powered off (" + how + ")");
    }

    /** The VM runs at a live migration's destination now ({@code migrate}): this process ends with 0. */
    public static Verdict migrated(String to) {
        return new Verdict(Kind.MIGRATED, 0, "migrated to " + to);
    }

    public static Verdict panic(String line) {
        return new Verdict(Kind.PANIC, PANIC_STATUS, "guest kernel panic: " + line);
    }

    /**
     * A guest CPU shut down ({@code KVM_EXIT_SHUTDOWN}) when the guest did not choose the triple fault as its way to
     * reboot: the kernel crashed too early or too hard to print a panic.
     */
    public static Verdict crash(String how) {
        return new Verdict(Kind.PANIC, PANIC_STATUS, "guest crashed: " + how);
    }

    public static Verdict timeout(String after) {
        return new Verdict(Kind.TIMEOUT, TIMEOUT_STATUS, "guest still running after " + after + ": killed");
    }

    public static Verdict error(String message) {
        return new Verdict(Kind.ERROR, ERROR_STATUS, message);
    }
}
