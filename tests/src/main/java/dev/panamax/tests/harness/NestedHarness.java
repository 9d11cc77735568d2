package dev.panamax.tests.harness;

import dev.panamax.images.Initramfs;
import dev.panamax.images.KernelModule;
import dev.panamax.images.ModuleTree;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
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

    /** The 9p options: virtio transport, 9P2000.L, 512000-byte messages (the default 8 KiB is slow). */
    private static final String NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000";

    /** Bumped whenever the layout of the cached image changes, so old cache files are not reused. */
    private static final String IMAGE_FORMAT = "panamax-l1/1";

    private static final String BEGIN = "PANAMAX-L1-BEGIN:";
    private static final String EXIT = "PANAMAX-L1-EXIT:";
    private static final String ERROR = "PANAMAX-L1-ERROR:";
    private static final int TAIL_LINES = 40;

    private final String qemu;
    private final Path kernel;
    private final ModuleTree moduleTree;
    private final List<KernelModule> modules;
    private final Path busybox;
    private final Path cacheDirectory;
    private final int cpus;
    private final int memoryMiB;
    private final List<Path> writable;
    private final List<String> qemuArgs;

    /** The cached base image, built on first use. */
    private Path image;

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
        this.busybox = b.busybox;
        this.cacheDirectory = b.cacheDirectory;
        this.cpus = b.cpus;
        this.memoryMiB = b.memoryMiB;
        this.writable = List.copyOf(b.writable);
        this.qemuArgs = List.copyOf(b.qemuArgs);
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
        Path base = image();
        Path work = Files.createTempDirectory("panamax-l1-");
        try {
            String nonce = UUID.randomUUID().toString().replace("-", "").substring(0, 16);
            Path initrd = work.resolve("initrd.gz");
            List<Path> shares = shares(command);
            writeInitrd(base, runArchive(command, nonce, false, shares), initrd);
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
            Result r = parseConsole(lines, nonce, elapsed, p.exitValue(), errors);
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
            writeInitrd(image(), runArchive(command, "interactive", true, shares), initrd);
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
     * Turns L1's console into a result: the lines between {@code BEGIN:nonce} and {@code EXIT:nonce=N}.
     * Text before the exit marker on its line (a last line without newline) belongs to the output.
     *
     * @throws NestedHarnessException if there is no exit marker
     */
    static Result parseConsole(List<String> lines, String nonce, Duration elapsed, int qemuStatus, List<String> qemuStderr) {
        String begin = BEGIN + nonce;
        String exit = EXIT + nonce + "=";
        int first = -1;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (first < 0 && line.endsWith(begin)) {
                first = i + 1;
                continue;
            }
            int at = line.indexOf(exit);
            if (at >= 0) {
                String digits = line.substring(at + exit.length()).strip();
                int status;
                try {
                    status = Integer.parseInt(digits);
                } catch (NumberFormatException e) {
                    throw new NestedHarnessException("L1 printed a malformed exit marker: '" + line + "'", lines);
                }
                var out = new StringBuilder();
                for (int j = Math.max(first, 0); j < i; j++) {
                    out.append(lines.get(j)).append('\n');
                }
                if (at > 0) {
                    out.append(line, 0, at).append('\n');
                }
                return new Result(status, out.toString(), elapsed);
            }
        }
        String reason = lines.stream().filter(l -> l.contains(ERROR)).findFirst()
                .map(l -> "L1 init failed:" + l.substring(l.indexOf(ERROR) + ERROR.length()))
                .orElse(first < 0
                        ? "L1 ended (QEMU exit status " + qemuStatus + ") before starting the command"
                        : "L1 ended (QEMU exit status " + qemuStatus + ") while the command ran, without reporting its status (kernel panic?)");
        throw new NestedHarnessException(reason + "\n--- last console lines ---\n" + tail(lines)
                + "--- last QEMU stderr lines ---\n" + tail(qemuStderr), lines);
    }

    private static String tail(List<String> lines) {
        var sb = new StringBuilder();
        for (String l : lines.subList(Math.max(0, lines.size() - TAIL_LINES), lines.size())) {
            sb.append(l).append('\n');
        }
        return sb.toString();
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

    /** The per-run archive: /panamax/run.conf and /panamax/run.sh. */
    private byte[] runArchive(GuestCommand command, String nonce, boolean interactive, List<Path> writable) {
        var conf = new StringBuilder("# one run of dev.panamax.tests.harness.NestedHarness; sourced by /init\n");
        conf.append("PANAMAX_NONCE=").append(nonce).append('\n');
        for (int i = 0; i < writable.size(); i++) {
            conf.append("rw_mount rw").append(i).append(' ').append(shellQuote(writable.get(i).toString())).append('\n');
        }
        var env = new TreeMap<String, String>();
        putIfSet(env, "PATH", System.getenv("PATH"));
        putIfSet(env, "HOME", System.getProperty("user.home"));
        env.putAll(command.environment());
        var sh = new StringBuilder("# one run of dev.panamax.tests.harness.NestedHarness; run by /init in chroot /host\n");
        sh.append("cd ").append(shellQuote(command.workingDirectory().toString()))
                .append(" || { echo \"panamax-l1: cannot cd to ").append(command.workingDirectory().toString().replace("\"", "\\\""))
                .append("\" >&2; exit 125; }\n");
        env.forEach((k, v) -> sh.append("export ").append(k).append('=').append(shellQuote(v)).append('\n'));
        if (interactive) {
            // The console is the user's terminal (QEMU puts it in raw mode); make L1's tty pass every byte
            // through untouched too, so the command (and the shell of its guest) does the echo and editing.
            sh.append("stty raw -echo 2>/dev/null\n");
            sh.append("/bin/sh -c ").append(shellQuote(command.script())).append("\n");
            sh.append("status=$?\nstty sane 2>/dev/null\nexit $status\n");
        } else {
            sh.append("exec /bin/sh -c ").append(shellQuote(command.script())).append(" </dev/null\n");
        }
        return Initramfs.builder()
                .directory("panamax", 0755)
                .file("panamax/run.conf", conf.toString().getBytes(StandardCharsets.UTF_8), 0644)
                .file("panamax/run.sh", sh.toString().getBytes(StandardCharsets.UTF_8), 0644)
                .toCpio();
    }

    private static void putIfSet(Map<String, String> env, String name, String value) {
        if (value != null && !value.isEmpty()) {
            env.put(name, value);
        }
    }

    /** Single-quotes {@code s} for a POSIX shell: {@code it's} becomes {@code 'it'\''s'}. */
    static String shellQuote(String s) {
        return "'" + s.replace("'", "'\\''") + "'";
    }

    /** Writes base (already gzip'd) followed by {@code runCpio} gzip'd as a second member. */
    private static void writeInitrd(Path base, byte[] runCpio, Path out) throws IOException {
        try (OutputStream o = Files.newOutputStream(out)) {
            Files.copy(base, o);
            var gz = new java.util.zip.GZIPOutputStream(o) {
                @Override
                public void close() throws IOException {
                    finish(); // end the gzip member; the outer try closes the file
                }
            };
            try (gz) {
                gz.write(runCpio);
            }
        }
    }

    /**
     * The cached base image, building it if no cache file with its hash exists.
     *
     * @throws IOException if the cache directory or image cannot be written
     */
    synchronized Path image() throws IOException {
        if (image != null) {
            return image;
        }
        String init = initScript();
        String hash = contentHash(init);
        Path cached = cacheDirectory.resolve("l1-" + kernelRelease() + "-" + hash.substring(0, 16) + ".cpio.gz");
        if (Files.isRegularFile(cached)) {
            LOG.info("L1: initramfs from cache {}", cached);
        } else {
            long t0 = System.nanoTime();
            Files.createDirectories(cacheDirectory);
            Initramfs.Builder b = Initramfs.builder()
                    .directory("proc", 0755).directory("sys", 0755).directory("dev", 0755)
                    .directory("host", 0755).directory("tmp", 01777)
                    .characterDevice("dev/console", 0600, 5, 1)
                    .file("bin/busybox", busybox, 0755)
                    .file("init", init.getBytes(StandardCharsets.UTF_8), 0755);
            for (int i = 0; i < modules.size(); i++) {
                b.file(moduleFileName(i, modules.get(i)), modules.get(i).file(), 0644);
            }
            b.writeGzip(cached); // atomic: temporary file then rename
            LOG.info("L1: built initramfs {} ({} bytes, {} modules) in {} ms", cached, Files.size(cached),
                    modules.size(), (System.nanoTime() - t0) / 1_000_000);
        }
        image = cached;
        return cached;
    }

    private static String moduleFileName(int index, KernelModule m) {
        return "lib/modules/%02d-%s.ko".formatted(index + 1, m.name());
    }

    /** SHA-256 (hex) over the image format, the init script, busybox and every module (path and bytes). */
    private String contentHash(String init) throws IOException {
        MessageDigest md;
        try {
            md = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        update(md, IMAGE_FORMAT);
        update(md, kernelRelease());
        update(md, init);
        digestFile(md, busybox);
        for (KernelModule m : modules) {
            update(md, m.relativePath());
            digestFile(md, m.file());
        }
        return HexFormat.of().formatHex(md.digest());
    }

    private static void update(MessageDigest md, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        md.update(java.nio.ByteBuffer.allocate(4).putInt(b.length).array()); // length first: no ambiguous concatenation
        md.update(b);
    }

    private static void digestFile(MessageDigest md, Path file) throws IOException {
        update(md, Long.toString(Files.size(file)));
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                md.update(buf, 0, n);
            }
        }
    }

    /** L1's /init: a busybox sh script (see the class comment for what it does and why). */
    String initScript() {
        var s = new StringBuilder();
        s.append("""
                #!/bin/busybox sh
                # L1 init, written by dev.panamax.tests.harness.NestedHarness (see its class comment).
                /bin/busybox --install -s /bin
                export PATH=/bin
                fail() { echo "%s $*"; sync; poweroff -f; sleep 30; }
                mount -t proc proc /proc || fail "mount -t proc failed"
                mount -t sysfs sysfs /sys || fail "mount -t sysfs failed"
                mount -t devtmpfs devtmpfs /dev || fail "mount -t devtmpfs failed"
                """.formatted(ERROR));
        for (int i = 0; i < modules.size(); i++) {
            String f = moduleFileName(i, modules.get(i));
            s.append("insmod /").append(f).append(" || fail \"insmod ").append(modules.get(i).name())
                    .append(" (").append(modules.get(i).relativePath()).append(") failed\"\n");
        }
        s.append("""
                [ -c /dev/kvm ] || fail "no /dev/kvm after loading kvm and kvm-amd (does the L1 CPU have svm?)"
                echo "panamax-l1: $(ls -l /dev/kvm)"
                mount -t 9p -o %1$s,ro host /host || fail "mounting the host root over 9p (mount_tag host) failed"
                for d in proc sys dev; do mount --bind /$d /host/$d || fail "bind-mounting /$d into /host failed"; done
                mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "mounting a tmpfs on /host/tmp failed"
                rw_mount() { mkdir -p "/host$2" && mount -t 9p -o %1$s "$1" "/host$2" || fail "mounting writable share $2 (mount_tag $1) failed"; }
                [ -f /panamax/run.conf ] || fail "no /panamax/run.conf: the per-run initramfs is missing"
                . /panamax/run.conf
                cp /panamax/run.sh /host/tmp/.panamax-run.sh || fail "copying run.sh to /host/tmp failed"
                echo "%2$s$PANAMAX_NONCE"
                chroot /host /bin/sh /tmp/.panamax-run.sh
                status=$?
                sync
                echo "%3$s$PANAMAX_NONCE=$status"
                poweroff -f
                sleep 30
                """.formatted(NINEP_OPTIONS, BEGIN, EXIT));
        return s.toString();
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

    /** Just enough ELF reading to tell a static from a dynamic executable (System V gABI, ELF-64 only). */
    static final class Elf {
        private static final int PT_INTERP = 3;

        private Elf() {
        }

        /**
         * True when the ELF-64 little-endian executable has a PT_INTERP program header (a dynamic loader).
         *
         * @throws IllegalStateException if the file is not an ELF-64 little-endian file
         */
        static boolean isDynamic(Path file) {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                var hdr = java.nio.ByteBuffer.allocate(64).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                ch.read(hdr, 0);
                if (hdr.position() < 64 || hdr.getInt(0) != 0x464c457f || hdr.get(4) != 2 || hdr.get(5) != 1) {
                    throw new IllegalStateException(file + " is not an ELF-64 little-endian executable");
                }
                long phoff = hdr.getLong(0x20);
                int phentsize = Short.toUnsignedInt(hdr.getShort(0x36));
                int phnum = Short.toUnsignedInt(hdr.getShort(0x38));
                var ph = java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < phnum; i++) {
                    ph.clear();
                    ch.read(ph, phoff + (long) i * phentsize);
                    if (ph.getInt(0) == PT_INTERP) {
                        return true;
                    }
                }
                return false;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
            }
        }
    }
}
