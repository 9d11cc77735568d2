package dev.panamax.tests;

import dev.panamax.tests.harness.HostVirtualization.Mode;
import dev.panamax.tests.harness.Result;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which session results {@link E2eSession} takes for the emulator's faults (one rerun) and which it does not. */
class E2eSessionTest {
    private static Result result(int status, String output) {
        return new Result(status, output, Duration.ofSeconds(1));
    }

    @Test
    void aTripleFaultIsTheEmulatorsOnlyWhenNested() {
        Result r = result(0, "panamax: guest crashed: vCPU 0 shut down (KVM_EXIT_SHUTDOWN: triple fault) at rip 0xfff0\nE2E a=110\n");
        assertTrue(E2eSession.emulatorFault(Mode.NESTED, r).contains("triple-faulted"));
        assertNull(E2eSession.emulatorFault(Mode.DIRECT, r));
    }

    @Test
    void aGuestThatNeverExitedIsTheEmulatorsOnlyWhenNested() {
        // The line of the CI run of 2026-12-02; a timed-out guest that did exit (an idle one, a hung script) is not.
        Result r = result(0, "panamax: at the timeout vCPU 0 was at rip 0xffffffffc04ce20c, runnable, after 0 exits\n"
                + "panamax: guest still running after 300 s: killed\nE2E fd-msix=124\n");
        assertTrue(E2eSession.emulatorFault(Mode.NESTED, r).contains("without one exit"));
        assertNull(E2eSession.emulatorFault(Mode.DIRECT, r));
        assertTrue(E2eSession.emulatorFault(Mode.NESTED, result(0, "panamax: at the timeout vCPU 0 was at rip 0x100200,"
                + " halted (waiting for an interrupt), after 0 exits\n")).contains("without one exit"));
        assertNull(E2eSession.emulatorFault(Mode.NESTED, result(0, "panamax: at the timeout vCPU 0 was at rip 0xffffffffa58592eb,"
                + " halted (waiting for an interrupt), after 17352 exits\nE2E timeout=124\n")));
        assertNull(E2eSession.emulatorFault(Mode.NESTED, result(0, "panamax: at the timeout vCPU 1 was at rip 0xffffffff81000000,"
                + " runnable, after 10 exits\n")));
    }

    @Test
    void aJvmCrashAndATimeoutAreTheEmulatorsAnywhere() {
        Result crash = result(1, "# A fatal error has been detected by the Java Runtime Environment:\n");
        assertTrue(E2eSession.emulatorFault(Mode.DIRECT, crash).contains("JVM crashed"));
        assertTrue(E2eSession.emulatorFault(Mode.NESTED, result(Result.TIMED_OUT, "")).contains("timed out"));
    }

    @Test
    void anOrdinaryFailureIsNotRerun() {
        assertNull(E2eSession.emulatorFault(Mode.NESTED, result(1, "E2E a=125\npanamax: guest kernel panic: Kernel panic\n")));
        assertNull(E2eSession.emulatorFault(Mode.NESTED, result(0, "E2E a=0\n")));
    }

    @Test
    void l1KernelDeathIsSeenOnItsConsole() {
        assertTrue(E2eSession.l1KernelDied(List.of("[  105.248938] BUG: TASK stack guard page was hit at 000000008d51f80b",
                "[  105.249608] Kernel panic - not syncing: Fatal exception in interrupt")));
        assertFalse(E2eSession.l1KernelDied(List.of("PANAMAX-L1-ERROR: insmod kvm-amd failed", "reboot: Power down")));
    }
}
