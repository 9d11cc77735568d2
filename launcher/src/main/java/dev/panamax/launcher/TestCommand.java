package dev.panamax.launcher;

import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.images.Initramfs;
import dev.panamax.vmm.Machine;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.Verdict;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code panamax test}: boot an image, run a script as the guest's init job, exit with the
 * script's status. The script travels in a second, tiny cpio appended to the image's initramfs
 * (the kernel unpacks concatenated archives in order), so the image itself stays as built. With {@code --snapshot}
 * the guest starts from a snapshot taken at its init instead, and the script comes over the serial console
 * ({@link TestSnapshots}).
 */
@Command(name = "test", mixinStandardHelpOptions = true,
        description = {"Boot IMAGE, run SCRIPT in the guest, and exit with the script's exit status.",
                "A guest still running at --timeout is killed (status " + Verdict.TIMEOUT_STATUS + "); "
                        + "a kernel panic gives " + Verdict.PANIC_STATUS + "."})
public final class TestCommand implements Callable<Integer> {
    /**
     * The kernel command line of a test boot: serial console, quiet, reboot at once on panic, reset by the
     * i8042; no ACPI tables yet, so the kernel is told not to look for them.
     */
    public static final String TEST_CMDLINE = "console=ttyS0 quiet panic=-1 reboot=k";

    @Mixin
    LoggingOptions logging;

    @Option(names = "--image", required = true, paramLabel = "DIR", description = "A directory made by 'panamax image build'.")
    Path image;

    @Option(names = "--script", required = true, paramLabel = "FILE", description = "The shell script to run in the guest.")
    Path script;

    @Option(names = "--timeout", paramLabel = "DURATION", defaultValue = "300s", converter = DurationConverter.class,
            description = "Kill the guest after this long (default: ${DEFAULT-VALUE}).")
    Duration timeout;

    @Mixin
    MachineSizeOptions size;

    @Mixin
    DeviceOptions devices;

    @Option(names = {"-p", "--cmdline", "--append"}, paramLabel = "ARGS", defaultValue = TEST_CMDLINE,
            description = "The kernel command line (default: ${DEFAULT-VALUE}).")
    String cmdline;

    @Option(names = "--nested", description = "Run the test inside the nested L1 VM under QEMU (for hosts without usable KVM).")
    boolean nested;

    @Option(names = "--api-socket", paramLabel = "PATH",
            description = "Listen for control requests (status, pause, resume, snapshot, migrate; see 'panamax ctl') on this UNIX socket.")
    Path apiSocket;

    @Option(names = "--stats", description = "At exit, print how many VM exits of each kind (port and MMIO by device) each vCPU took,"
            + " and the time from process start to the first KVM_RUN.")
    boolean stats;

    @Option(names = "--snapshot", description = "Boot the image once to its init and save a snapshot there (in the cache,"
            + " $XDG_CACHE_HOME/panamax/snapshots); later runs restore it and send SCRIPT over the serial console."
            + " A damaged snapshot is made again.")
    boolean snapshot;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws IOException, InterruptedException {
        GuestImage verified = GuestImage.verify(image);
        if (nested) {
            return runNested();
        }
        if (!Files.isRegularFile(script)) {
            throw new PanamaxException("--script " + script + ": no such file");
        }
        if (snapshot) {
            if (!devices.specs().isEmpty()) {
                throw new PanamaxException("--snapshot with --device is not supported yet");
            }
            return TestSnapshots.run(verified, Files.readAllBytes(script), cmdline, new TestSnapshots.Shape(size.cpus,
                    size.memory, timeout, stats, size.memoryBackend, apiSocket), TestSnapshots.cacheDir());
        }
        Path initrd = Files.createTempFile("panamax-test-", ".cpio.gz");
        try {
            writeInitrdWithScript(verified.initramfs(), script, initrd);
            MachineConfig config = new MachineConfig(verified.kernel(), initrd, cmdline, size.cpus, size.memory, timeout, false,
                    devices.specs(), stats, size.memoryBackend, apiSocket);
            return Machine.report(Machine.boot(config));
        } finally {
            Files.deleteIfExists(initrd);
        }
    }

    /**
     * Runs this same command, without {@code --nested}, in the nested L1 VM. L1 sees the host's root
     * read-only, with an empty /tmp but for the current directory (shared if it lies there).
     */
    private int runNested() throws IOException, InterruptedException {
        Path cwd = Path.of("").toAbsolutePath();
        for (Path p : new Path[]{image.toAbsolutePath(), script.toAbsolutePath()}) {
            if (p.startsWith("/tmp") && !p.startsWith(cwd)) {
                throw new PanamaxException("with --nested, " + p + " must be under the current directory or outside /tmp:"
                        + " the nested VM sees only the current directory of the host's /tmp");
            }
        }
        StringBuilder command = new StringBuilder(
                shellQuote(Path.of(System.getProperty("panamax.home", ".")).resolve("panamax").toString()));
        for (String arg : spec.root().commandLine().getParseResult().originalArgs()) {
            if (!arg.equals("--nested")) {
                command.append(' ').append(shellQuote(arg));
            }
        }
        int status = NestedRunner.load().run(command.toString(), cwd, Map.of("PANAMAX_NO_BUILD", "1"),
                timeout.plusMinutes(5), false);
        return status < 0 ? Verdict.TIMEOUT_STATUS : status;
    }

    static String shellQuote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /** Writes {@code base} followed by a gzip'd cpio holding {@code script} at the path the image's init runs. */
    static void writeInitrdWithScript(Path base, Path script, Path out) {
        try {
            Path overlay = Files.createTempFile(out.getParent(), "panamax-script-", ".cpio.gz");
            try {
                Initramfs.builder().file(ImageBuilder.SCRIPT_GUEST_PATH.substring(1), script, 0755).writeGzip(overlay);
                try (OutputStream o = Files.newOutputStream(out, StandardOpenOption.TRUNCATE_EXISTING)) {
                    Files.copy(base, o);
                    Files.copy(overlay, o);
                }
            } finally {
                Files.deleteIfExists(overlay);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the test initrd " + out + ": " + e.getMessage(), e);
        }
    }
}
