package dev.panamax.launcher;

import dev.panamax.vmm.Machine;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.Verdict;
import dev.panamax.vmm.migration.IncomingMigration;
import dev.panamax.vmm.migration.MigrationException;
import dev.panamax.vmm.snapshot.Snapshot;
import dev.panamax.vmm.snapshot.SnapshotException;
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

    @Option(names = {"-k", "--kernel"}, paramLabel = "PATH", description = "The kernel, a bzImage (required unless --restore).")
    Path kernel;

    @Option(names = "--restore", paramLabel = "DIR",
            description = "Start the VM a snapshot holds ('panamax ctl snapshot DIR') instead of booting a kernel: vCPUs, RAM and"
                    + " command line come from it; --device must name devices of the same kinds as it has.")
    Path restore;

    @Option(names = "--incoming", paramLabel = "unix:PATH",
            description = "Wait for a live migration ('panamax ctl migrate PATH' on the source) on this UNIX socket and run the VM"
                    + " it brings: vCPUs, RAM and command line come from the source; --device as for --restore. Waits up to"
                    + " --timeout (default 10 minutes) for the source.")
    String incoming;

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
        if (incoming != null) {
            return incoming();
        }
        if (restore != null) {
            if (kernel != null || initrd != null) {
                throw new PanamaxException("--restore starts the kernel the snapshot holds: give no --kernel or --initrd");
            }
            Snapshot snapshot;
            try {
                snapshot = Snapshot.open(restore);
            } catch (SnapshotException e) {
                throw new PanamaxException("--restore: " + e.getMessage());
            }
            MachineConfig config = MachineConfig.forSnapshot(snapshot.manifest().machine(), timeout, true, devices.specs(),
                    stats, size.memoryBackend, apiSocket);
            return Machine.report(Machine.restore(config, snapshot));
        }
        if (kernel == null) {
            throw new PanamaxException("give a kernel (--kernel PATH), a snapshot (--restore DIR) or --incoming unix:PATH");
        }
        MachineConfig config = new MachineConfig(kernel, initrd, cmdline, size.cpus, size.memory, timeout, true,
                devices.specs(), stats, size.memoryBackend, apiSocket);
        Verdict verdict = Machine.boot(config);
        return Machine.report(verdict);
    }

    /** {@code --incoming unix:PATH}: the destination of a live migration. */
    private int incoming() {
        if (kernel != null || initrd != null || restore != null) {
            throw new PanamaxException("--incoming runs the VM the source sends: give no --kernel, --initrd or --restore");
        }
        if (!incoming.startsWith("unix:") || incoming.length() == "unix:".length()) {
            throw new PanamaxException("--incoming takes unix:PATH (a UNIX socket to listen on), not '" + incoming + "'");
        }
        Path socket = Path.of(incoming.substring("unix:".length())).toAbsolutePath();
        IncomingMigration in;
        try {
            in = IncomingMigration.await(socket, timeout != null ? timeout : IncomingMigration.DEFAULT_WAIT,
                    IncomingMigration.IO_TIMEOUT);
        } catch (MigrationException e) {
            throw new PanamaxException("--incoming: " + e.getMessage());
        }
        try (in) {
            MachineConfig config = MachineConfig.forSnapshot(in.machine(), timeout, true, devices.specs(), stats,
                    size.memoryBackend, apiSocket);
            return Machine.report(Machine.restore(config, in));
        } catch (RuntimeException e) {
            in.fail(e instanceof ConfigException c ? c.messageNaming("--incoming") : String.valueOf(e.getMessage()));
            throw e;
        }
    }
}
