package dev.panamax.tests.harness;

import java.util.List;

/**
 * The L1 VM of a {@link NestedHarness} run ended without reporting the command's exit status: its init
 * failed (a module did not load, no /dev/kvm, the 9p mount failed: the message says which), the kernel
 * panicked, or QEMU itself failed. The message carries the last lines of the serial console and of
 * QEMU's stderr.
 */
public final class NestedHarnessException extends RuntimeException {

    private final List<String> console;

    NestedHarnessException(String message, List<String> console) {
        super(message);
        this.console = List.copyOf(console);
    }

    /** Every line L1's serial console showed, carriage returns removed. */
    public List<String> console() {
        return console;
    }
}
