package dev.panamax.tests.harness;

import dev.panamax.images.KernelModule;
import dev.panamax.images.ModuleTree;
import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a shell command inside a nested "L1" Linux VM that has a working {@code /dev/kvm}, for hosts
 * that have none (or only PVM's, which cannot boot Linux).
 *
 * <h2>Why nested</h2>
 * Panamax is a VMM: its end-to-end tests boot guests on {@code /dev/kvm} and, later, pass devices
 * through {@code /dev/vfio}. Our CI machines have neither. QEMU can emulate an x86 CPU in software
 * (TCG) <em>including AMD SVM</em>; a Linux kernel booted on such a CPU loads {@code kvm-amd} and offers a
 * real {@code /dev/kvm}. That VM is "L1"; the VMM under test runs inside L1 and its guest is "L2".
 * With QEMU's emulated {@code intel-iommu} (pass it via {@link Builder#qemuArgs}), L1 also has a working
 * kernel VFIO. Measured cost: L1 boots to its init in about 6-10 s on 2 host cores; {@code java -version}
 * in L1 takes about 3 s.
 *
 * <h2>What L1 is</h2>
 * <ul>
 *   <li>QEMU: {@code qemu-system-x86_64 -machine q35 -cpu EPYC,+svm,... ({@link #L1_CPU}) -smp 2 -m 6144 -accel tcg,thread=multi
 *       -nographic -no-reboot -nic none -kernel VMLINUZ -initrd INITRD -append "console=ttyS0 quiet panic=-1"
 *       -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap}, plus one
 *       writable {@code -virtfs} per {@link Builder#writable writable directory}, plus the caller's
 *       {@link Builder#qemuArgs extra arguments}. {@code -nic none} drops the default NIC (and the iPXE
 *       option ROM's boot delay); {@code panic=-1} with {@code -no-reboot} turns a kernel panic into a
 *       QEMU exit instead of a hang.</li>
 *   <li>Kernel: the host's Debian kernel ({@code /boot/vmlinuz-VER}), modules from {@code /lib/modules/VER}.</li>
 *   <li>Initramfs: busybox-static as {@code /bin/busybox}, the {@link #L1_MODULES} with their
 *       dependencies (resolved through {@link ModuleTree}, loaded with {@code insmod} in that order), and
 *       a generated {@code /init}. It depends only on the kernel, busybox and the module list, so it is
 *       built once and cached in {@link Builder#cacheDirectory} as {@code l1-VER-HASH.cpio.gz}, HASH being
 *       a SHA-256 over all its inputs' contents.</li>
 *   <li>The init mounts proc, sysfs and devtmpfs, loads the modules, checks that {@code /dev/kvm} is a
 *       character device, mounts the host's root read-only over virtio-9p at {@code /host}, bind-mounts
 *       {@code /proc /sys /dev} into it, puts a fresh tmpfs on {@code /host/tmp}, mounts the writable
 *       shares, and {@code chroot /host} runs the command, so the command sees the host's files (the
 *       JDK, Maven's {@code target/} directories, guest images) at their usual paths.</li>
 * </ul>
 *
 * <h2>How the command gets in and the status comes out</h2>
 * Each run appends a second, tiny gzip'd newc cpio to the cached one (the kernel unpacks concatenated
 * initramfs archives in turn, see Documentation/driver-api/early-userspace/buffer-format.rst). It holds
 * {@code /panamax/run.conf} (a per-run nonce and the writable-share mounts, sourced by init) and
 * {@code /panamax/run.sh}, which does {@code cd DIR; export NAME=VALUE...; exec /bin/sh -c COMMAND}.
 * The init prints {@code PANAMAX-L1-BEGIN:NONCE} before the command and
 * {@code PANAMAX-L1-EXIT:NONCE=STATUS} after it on the serial console, then {@code poweroff -f}. The
 * harness reads the console from QEMU's stdout (logging each line at INFO as it arrives, prefixed
 * {@code "L1| "}), returns the lines between the markers as the output, and the status. The nonce keeps
 * a command that prints marker-like text from being mistaken for the init. If the init fails it prints
 * {@code PANAMAX-L1-ERROR: what}; if no exit marker comes at all (panic, QEMU error) the run throws
 * {@link NestedHarnessException} with the console's tail. At the timeout QEMU is killed and the result's
 * status is {@link Result#TIMED_OUT}.
 *
 * <h2>The command's environment</h2>
 * Inside L1 the command runs as root with {@code PATH} and {@code HOME} taken from this JVM's
 * environment plus the command's own variables (nothing else of the host environment). The host root is
 * read-only, except {@code /tmp} (a tmpfs that starts empty: host files under /tmp are not visible) and
 * the {@link Builder#writable writable directories}.
 *
 * <p>Instances are immutable and thread-safe; each {@link #run} boots its own L1. Requirements
 * (Debian): {@code qemu-system-x86 linux-image-amd64 busybox-static}.
 *
 * <p>This class starts QEMU and waits for it; {@link L1Image} builds the initramfs (base image, /init, per-run
 * archive), {@link L1Console} reads the result from the console, {@link Elf} tells a static busybox.
 */
public final class NestedHarness implements GuestRunner {

    private static final Logger LOG = LoggerFactory.getLogger(NestedHarness.class);

    /**
     * The modules L1 loads, in this order (each after its dependencies, which {@link ModuleTree#resolve}
     * adds): KVM on AMD SVM; virtio-pci and 9p for the host share; VFIO for passthrough tests.
     */
    public static final List<String> L1_MODULES = List.of(
            "irqbypass", "kvm", "ccp", "kvm-amd",
            "virtio_ring", "virtio", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p",
            "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
            "vfio", "vfio_iommu_type1", "vfio_virqfd", "vfio-pci-core", "vfio-pci");

    /**
     * L1's CPU: AMD EPYC with SVM, less the features TCG cannot emulate (QEMU would drop them anyway,
     * with a warning per feature and vCPU on every start).
     */
    public static final String L1_CPU =
            "EPYC,+svm,-rdseed,-sha-ni,-fxsr-opt,-misalignsse,-3dnowprefetch,-osvw,-topoext,-nrip-save,-xsavec";

    /** The kernel command line; console on the first serial port, which QEMU's -nographic puts on stdout. */
    public static final String KERNEL_CMDLINE = "console=ttyS0 quiet panic=-1";

    private final String qemu;
    private final Path kernel;
    private final ModuleTree moduleTree;
    private final List<KernelModule> modules;
    private final int cpus;
    private final int memoryMiB;
    private final List<Path> writable;
    private final List<String> qemuArgs;
    /** L1's initramfs: the cached base image and the per-run archive. */
    private final L1Image l1Image;

    private NestedHarness(Builder b) {
        this.qemu = b.qemu;
        this.kernel = b.kernel;
        this.moduleTree = ModuleTree.open(b.modulesRoot);
        this.modules = moduleTree.resolve(b.modules);
        for (KernelModule m : modules) {
            if (m.compressed()) {
                throw new IllegalStateException("kernel module " + m.file() + " is " + m.compression()
                        + "-compressed; the L1 initramfs's busybox insmod loads only plain .ko files");
            }
        }
        this.cpus = b.cpus;
        this.memoryMiB = b.memoryMiB;
        this.writable = List.copyOf(b.writable);
        this.qemuArgs = List.copyOf(b.qemuArgs);
        this.l1Image = new L1Image(moduleTree.kernelRelease(), modules, b.busybox, b.cacheDirectory);
    }

    /** A builder with defaults found on this host (see {@link Builder}). */
    public static Builder builder() {
        return new Builder();
    }

    @Override
    public HostVirtualization.Mode mode() {
        return HostVirtualization.Mode.NESTED;
    }

    /** The kernel release of L1 (e.g. "6.1.0-56-amd64"). */
    public String kernelRelease() {
        return moduleTree.kernelRelease();
    }

    /** The modules in L1's initramfs, in load order. */
    public List<KernelModule> modules() {
        return modules;
    }

    /**
     * Boots L1, runs {@code command} in it as described in the class comment, and powers L1 off.
     *
     * @return the command's status and output; {@link Result#TIMED_OUT} if L1 was killed at the timeout
     * @throws IOException            if the initramfs cannot be written or QEMU cannot be started
     * @throws NestedHarnessException if L1 ended without reporting an exit status
     * @throws InterruptedException   if interrupted while waiting (QEMU is killed)
     */
    @Override
    public Result run(GuestCommand command) throws IOException, InterruptedException {
        long start = System.nanoTime();
        Path base = l1Image.image();
        Path work = Files.createTempDirectory("panamax-l1-");
        try {
            String nonce = UUID.randomUUID().toString().replace("-", "").substring(0, 16);
            Path initrd = work.resolve("initrd.gz");
            List<Path> shares = shares(command);
            L1Image.writeInitrd(base, L1Image.runArchive(command, nonce, false, shares), initrd);
            List<String> argv = qemuCommandLine(initrd, shares);
            LOG.info("L1: booting {} to run: {} (in {}, timeout {} s)", kernel, command.script(),
                    command.workingDirectory(), command.timeout().toSeconds());
            LOG.debug("L1: {}", String.join(" ", argv));

            Process p = new ProcessBuilder(argv)
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .start();
            var console = new OutputPump("l1-console", p.getInputStream(), true, line -> LOG.info("L1| {}", line));
            var stderr = new OutputPump("l1-qemu-stderr", p.getErrorStream(), false, line -> LOG.debug("qemu: {}", line));
            boolean exited;
            try {
                exited = p.waitFor(command.timeout().toNanos() - (System.nanoTime() - start), TimeUnit.NANOSECONDS);
            } catch (InterruptedException e) {
                p.destroyForcibly();
                throw e;
            }
            if (!exited) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
            }
            List<String> lines = console.finish(10_000);
            List<String> errors = stderr.finish(10_000);
            Duration elapsed = Duration.ofNanos(System.nanoTime() - start);
            if (!exited) {
                LOG.warn("L1: killed after {} s (timeout {} s)", elapsed.toSeconds(), command.timeout().toSeconds());
                return new Result(Result.TIMED_OUT, DirectRunner.join(lines), elapsed);
            }
            Result r = L1Console.parse(lines, nonce, elapsed, p.exitValue(), errors);
            LOG.info("L1: exit status {} after {} ms", r.exitStatus(), elapsed.toMillis());
            return r;
        } finally {
            deleteTree(work);
        }
    }

    /**
     * Runs {@code command} in L1 with L1's serial console on this process's terminal, input included:
     * for a person at a shell (e.g. {@code panamax demo} on a host without KVM). Nothing is captured;
     * QEMU's {@code -nographic} puts the terminal in raw mode and gives it back when L1 powers off.
     *
     * @return QEMU's exit status (0 when L1 powered off normally), or {@link Result#TIMED_OUT}
     */
    public int runInteractive(GuestCommand command) throws IOException, InterruptedException {
        Path work = Files.createTempDirectory("panamax-l1-");
        try {
            Path initrd = work.resolve("initrd.gz");
            List<Path> shares = shares(command);
            L1Image.writeInitrd(l1Image.image(), L1Image.runArchive(command, "interactive", true, shares), initrd);
            Process p = new ProcessBuilder(qemuCommandLine(initrd, shares)).inheritIO().start();
            if (!p.waitFor(command.timeout().toNanos(), TimeUnit.NANOSECONDS)) {
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                return Result.TIMED_OUT;
            }
            return p.exitValue();
        } finally {
            deleteTree(work);
        }
    }

    /**
     * The writable shares of one run: the builder's, plus the command's working directory when it lies
     * under /tmp (L1 puts an empty tmpfs there, which would hide it; a CI checkout may well be there).
     */
    List<Path> shares(GuestCommand command) {
        List<Path> shares = new ArrayList<>(writable);
        Path dir = command.workingDirectory().toAbsolutePath().normalize();
        if (dir.startsWith("/tmp") && shares.stream().noneMatch(dir::startsWith)) {
            shares.add(dir);
        }
        return shares;
    }

    /** The QEMU command line for one run. */
    List<String> qemuCommandLine(Path initrd, List<Path> writable) {
        List<String> argv = new ArrayList<>(List.of(qemu,
                "-machine", "q35", "-cpu", L1_CPU, "-smp", Integer.toString(cpus), "-m", Integer.toString(memoryMiB),
                "-accel", "tcg,thread=multi", "-nographic", "-no-reboot", "-nic", "none",
                "-kernel", kernel.toString(), "-initrd", initrd.toString(), "-append", KERNEL_CMDLINE,
                "-virtfs", "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap"));
        for (int i = 0; i < writable.size(); i++) {
            argv.add("-virtfs");
            argv.add("local,path=" + writable.get(i).toString().replace(",", ",,")
                    + ",mount_tag=rw" + i + ",security_model=none,multidevs=remap");
        }
        argv.addAll(qemuArgs);
        return argv;
    }

    /**
     * The cached base initramfs, building it if no cache file with its hash exists.
     *
     * @throws IOException if the cache directory or image cannot be written
     */
    Path image() throws IOException {
        return l1Image.image();
    }

    /** L1's /init: a busybox sh script (see the class comment for what it does and why). */
    String initScript() {
        return l1Image.initScript();
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    LOG.debug("cannot delete {}: {}", p, e.getMessage());
                }
            });
        } catch (IOException | UncheckedIOException e) {
            LOG.debug("cannot delete {}: {}", dir, e.getMessage());
        }
    }

    /**
     * Settings for a {@link NestedHarness}. Defaults:
     * <ul>
     *   <li>kernel: {@code $PANAMAX_L1_KERNEL} if set, else the newest {@code /boot/vmlinuz-VER} that has a
     *       {@code /lib/modules/VER/modules.dep}; modules root {@code /lib/modules/VER};</li>
     *   <li>busybox: {@code /bin/busybox}, which must be statically linked (package busybox-static);</li>
     *   <li>QEMU: {@code qemu-system-x86_64} from {@code PATH}; 2 CPUs, 6144 MiB;</li>
     *   <li>cache: {@code $XDG_CACHE_HOME/panamax/l1}, else {@code ~/.cache/panamax/l1}.</li>
     * </ul>
     */
    public static final class Builder {
        private String qemu = "qemu-system-x86_64";
        private Path kernel;
        private Path modulesRoot;
        private Path busybox = Path.of("/bin/busybox");
        private List<String> modules = L1_MODULES;
        private Path cacheDirectory = defaultCacheDirectory();
        private int cpus = 2;
        private int memoryMiB = 6144;
        private final List<Path> writable = new ArrayList<>();
        private final List<String> qemuArgs = new ArrayList<>();

        private Builder() {
        }

        /** The QEMU binary: a name looked up in PATH, or a path. */
        public Builder qemu(String binary) {
            this.qemu = Objects.requireNonNull(binary);
            return this;
        }

        /** L1's kernel image ({@code bzImage}, e.g. /boot/vmlinuz-6.1.0-56-amd64) and its module tree. */
        public Builder kernel(Path vmlinuz, Path modulesRoot) {
            this.kernel = vmlinuz;
            this.modulesRoot = modulesRoot;
            return this;
        }

        /** A statically linked busybox binary. */
        public Builder busybox(Path binary) {
            this.busybox = binary;
            return this;
        }

        /** The modules L1 loads (dependencies are added); default {@link #L1_MODULES}. */
        public Builder modules(List<String> names) {
            this.modules = List.copyOf(names);
            return this;
        }

        /** Where the base initramfs is cached. */
        public Builder cacheDirectory(Path dir) {
            this.cacheDirectory = dir.toAbsolutePath();
            return this;
        }

        /** L1's CPU count (QEMU -smp) and memory in MiB (QEMU -m). */
        public Builder machine(int cpuCount, int memoryMebibytes) {
            if (cpuCount < 1 || memoryMebibytes < 256) {
                throw new IllegalArgumentException("L1 needs at least 1 CPU and 256 MiB, got " + cpuCount
                        + " CPUs and " + memoryMebibytes + " MiB");
            }
            this.cpus = cpuCount;
            this.memoryMiB = memoryMebibytes;
            return this;
        }

        /**
         * A host directory L1 may write: shared read-write over its own 9p tag and mounted at the same
         * path inside the chroot (files are created with QEMU's uid, security_model=none).
         */
        public Builder writable(Path directory) {
            Path dir = directory.toAbsolutePath().normalize();
            if (!Files.isDirectory(dir)) {
                throw new IllegalArgumentException("writable share " + dir + " is not a directory");
            }
            writable.add(dir);
            return this;
        }

        /** Extra QEMU arguments appended to the command line, e.g. {@code -device intel-iommu ...}. */
        public Builder qemuArgs(String... args) {
            qemuArgs.addAll(List.of(args));
            return this;
        }

        /**
         * Checks the kernel, module tree, busybox and QEMU, and reads the module tree. The initramfs is
         * built on the first run.
         *
         * @throws IllegalStateException with a one-line message naming what is missing
         */
        public NestedHarness build() {
            if (kernel == null) {
                findKernel();
            }
            if (!Files.isReadable(kernel)) {
                throw new IllegalStateException("L1 kernel " + kernel + " is not readable (install linux-image-amd64)");
            }
            if (!Files.isRegularFile(modulesRoot.resolve("modules.dep"))) {
                throw new IllegalStateException("L1 module tree " + modulesRoot + " has no modules.dep");
            }
            if (!Files.isReadable(busybox)) {
                throw new IllegalStateException("busybox " + busybox + " is missing (install busybox-static)");
            }
            if (Elf.isDynamic(busybox)) {
                throw new IllegalStateException("busybox " + busybox
                        + " is dynamically linked; L1's initramfs needs a static one (install busybox-static)");
            }
            if (!qemu.contains("/") && findOnPath(qemu) == null) {
                throw new IllegalStateException(qemu + " not found in PATH (install qemu-system-x86)");
            }
            return new NestedHarness(this);
        }

        private void findKernel() {
            String forced = System.getenv("PANAMAX_L1_KERNEL");
            if (forced != null && !forced.isBlank()) {
                kernel = Path.of(forced);
                String name = kernel.getFileName().toString();
                modulesRoot = Path.of("/lib/modules", name.startsWith("vmlinuz-") ? name.substring(8) : name);
                return;
            }
            List<String> releases = new ArrayList<>();
            try (Stream<Path> boot = Files.list(Path.of("/boot"))) {
                boot.map(p -> p.getFileName().toString()).filter(n -> n.startsWith("vmlinuz-"))
                        .map(n -> n.substring("vmlinuz-".length()))
                        .filter(v -> Files.isRegularFile(Path.of("/lib/modules", v, "modules.dep")))
                        .forEach(releases::add);
            } catch (IOException e) {
                // No /boot: reported below.
            }
            if (releases.isEmpty()) {
                throw new IllegalStateException("no L1 kernel: no /boot/vmlinuz-VER with /lib/modules/VER/modules.dep"
                        + " (install linux-image-amd64, or set PANAMAX_L1_KERNEL)");
            }
            releases.sort(Builder::compareVersions);
            String v = releases.getLast();
            kernel = Path.of("/boot", "vmlinuz-" + v);
            modulesRoot = Path.of("/lib/modules", v);
        }

        /** Compares kernel releases by their runs of digits numerically ("6.1.0-9" before "6.1.0-56"). */
        static int compareVersions(String a, String b) {
            String[] x = a.split("(?<=\\d)(?=\\D)|(?<=\\D)(?=\\d)");
            String[] y = b.split("(?<=\\d)(?=\\D)|(?<=\\D)(?=\\d)");
            for (int i = 0; i < Math.min(x.length, y.length); i++) {
                int c = Character.isDigit(x[i].charAt(0)) && Character.isDigit(y[i].charAt(0))
                        ? new java.math.BigInteger(x[i]).compareTo(new java.math.BigInteger(y[i]))
                        : x[i].compareTo(y[i]);
                if (c != 0) {
                    return c;
                }
            }
            return Integer.compare(x.length, y.length);
        }

        private static Path findOnPath(String name) {
            String path = System.getenv("PATH");
            if (path == null) {
                return null;
            }
            for (String dir : path.split(File.pathSeparator)) {
                Path p = Path.of(dir.isEmpty() ? "." : dir, name);
                if (Files.isExecutable(p)) {
                    return p;
                }
            }
            return null;
        }

        private static Path defaultCacheDirectory() {
            String xdg = System.getenv("XDG_CACHE_HOME");
            Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
            return base.resolve("panamax").resolve("l1").toAbsolutePath();
        }
    }
}
