package dev.panamax.launcher;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.KvmException;
import dev.panamax.vmm.Machine;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.Verdict;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code panamax demo}: the first thing to run on a fresh machine. Builds (or reuses) the default
 * guest image from Debian's packages and boots it to an interactive busybox shell on this terminal:
 * directly on KVM where the host has it, else inside the nested L1 VM (slow, but it works anywhere).
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Build the default guest image and boot it to a shell (nested under QEMU if this host has no usable KVM).")
public final class DemoCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(DemoCommand.class);

    @Mixin
    LoggingOptions logging;

    @Option(names = "--direct", description = "Boot on this host's /dev/kvm; never go nested.")
    boolean direct;

    @Option(names = {"-c", "--cpus"}, paramLabel = "N", defaultValue = "2", description = "vCPUs (default: ${DEFAULT-VALUE}).")
    int cpus;

    @Option(names = {"-m", "--memory"}, paramLabel = "SIZE", defaultValue = "512M", converter = SizeConverter.class,
            description = "Guest RAM (default: ${DEFAULT-VALUE}).")
    long memory;

    @Override
    public Integer call() throws Exception {
        Path dir = DebianPackages.defaultCacheDir().resolve("images/demo");
        GuestImage image;
        try {
            image = GuestImage.verify(dir);
        } catch (IllegalArgumentException notYet) {
            log.info("building the demo image from Debian packages into {}", dir);
            image = new ImageBuilder(DebianPackages.inDefaultCache()).build(dir);
        }
        String unusable = kvmProblem();
        if (unusable == null || direct) {
            log.info("booting {} with {} vCPUs and {} MiB; to leave, type 'exit' at the guest's shell",
                    image.kernel(), cpus, memory >> 20);
            MachineConfig config = new MachineConfig(image.kernel(), image.initramfs(),
                    "console=ttyS0 quiet reboot=k", cpus, memory, null, true);
            return Machine.report(Machine.boot(config));
        }
        log.info("{}", unusable);
        log.info("so the demo boots inside a nested VM under QEMU (software CPU: about a minute to the shell);"
                + " to leave, type 'exit' at the guest's shell");
        String self = Path.of(System.getProperty("panamax.home", ".")).resolve("panamax").toString();
        int status = NestedRunner.load().run(self + " demo --direct -c " + cpus + " -m " + (memory >> 20) + "M",
                Path.of("").toAbsolutePath(), Map.of("PANAMAX_NO_BUILD", "1"), Duration.ofHours(4), true);
        return status < 0 ? Verdict.TIMEOUT_STATUS : status;
    }

    /** @return why this host's KVM cannot boot the guest, or null if it can */
    static String kvmProblem() {
        try (Kvm kvm = Kvm.open()) {
            return null;
        } catch (KvmException | dev.panamax.core.sys.LinuxException e) {
            return e.getMessage();
        }
    }
}
