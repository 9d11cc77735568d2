package dev.panamax.launcher;

import dev.panamax.vmm.Machine;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.Verdict;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * {@code panamax run}: boot a Linux kernel with its serial console on the terminal, and exit with
 * the guest's verdict ({@link Verdict}). Options as QEMU and kvmtool users know them.
 */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Boot a Linux guest (bzImage + initramfs) with its serial console on this terminal.",
                "Exit status: what the guest wrote to port 0xF4, 0 on reset, "
                        + Verdict.PANIC_STATUS + " on kernel panic, " + Verdict.TIMEOUT_STATUS + " on timeout, "
                        + Verdict.ERROR_STATUS + " on error."})
public final class RunCommand implements Callable<Integer> {
    @Mixin
    LoggingOptions logging;

    @Option(names = {"-k", "--kernel"}, required = true, paramLabel = "PATH", description = "The kernel, a bzImage.")
    Path kernel;

    @Option(names = {"-i", "--initrd"}, paramLabel = "PATH", description = "The initramfs.")
    Path initrd;

    @Option(names = {"-p", "--cmdline", "--append"}, paramLabel = "ARGS", defaultValue = "console=ttyS0",
            description = "The kernel command line (default: ${DEFAULT-VALUE}).")
    String cmdline;

    @Mixin
    MachineSizeOptions size;

    @Mixin
    DeviceOptions devices;

    @Option(names = "--timeout", paramLabel = "DURATION", converter = DurationConverter.class,
            description = "Kill the guest after this long, e.g. 120s or 5m (exit status " + Verdict.TIMEOUT_STATUS + ").")
    Duration timeout;

    @Option(names = "--api-socket", paramLabel = "PATH",
            description = "Listen for control requests (status, pause, resume, snapshot, migrate; see 'panamax ctl') on this UNIX socket.")
    Path apiSocket;

    @Option(names = "--stats", description = "At exit, print how many VM exits of each kind (port and MMIO by device) each vCPU took,"
            + " and the time from process start to the first KVM_RUN.")
    boolean stats;

    @Override
    public Integer call() {
        MachineConfig config = new MachineConfig(kernel, initrd, cmdline, size.cpus, size.memory, timeout, true,
                devices.specs(), stats, size.memoryBackend, apiSocket);
        Verdict verdict = Machine.boot(config);
        return Machine.report(verdict);
    }
}
