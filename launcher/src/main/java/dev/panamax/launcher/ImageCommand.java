package dev.panamax.launcher;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code panamax image build}: a reproducible guest image (kernel + initramfs + manifest) from Debian packages. */
@Command(name = "image", mixinStandardHelpOptions = true, description = "Guest images.",
        subcommands = ImageCommand.Build.class)
public final class ImageCommand {
    @Command(name = "build", mixinStandardHelpOptions = true,
            description = {"Build DIR/vmlinuz, DIR/initramfs.cpio.gz and DIR/manifest.json from Debian packages.",
                    "The same inputs give the same bytes (SOURCE_DATE_EPOCH sets the file times, default 0)."})
    static final class Build implements Callable<Integer> {
        @Mixin
        LoggingOptions logging;

        @Option(names = "--kernel-package", paramLabel = "PKG", defaultValue = ImageBuilder.DEFAULT_KERNEL_PACKAGE,
                description = "Debian kernel package, NAME or NAME=VERSION (default: ${DEFAULT-VALUE}).")
        String kernelPackage;

        @Option(names = "--modules", paramLabel = "M1,M2", split = ",",
                description = "Kernel modules to load at boot, with their dependencies (e.g. nvme,virtio_blk).")
        List<String> modules = new ArrayList<>();

        @Option(names = "--add", paramLabel = "HOST_PATH:GUEST_PATH", description = "Copy a host file or directory into the image (repeatable).")
        List<String> adds = new ArrayList<>();

        @Option(names = "--init-script", paramLabel = "FILE", description = "A shell script the guest's init runs; its exit status is the VM's.")
        Path initScript;

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "DIR", description = "The image directory to write.")
        Path output;

        @Override
        public Integer call() {
            ImageBuilder builder = new ImageBuilder(DebianPackages.inDefaultCache())
                    .kernelPackage(kernelPackage).modules(modules).initScript(initScript);
            adds.forEach(builder::add);
            GuestImage image = builder.build(output);
            System.out.println(image.dir());
            return 0;
        }
    }
}
