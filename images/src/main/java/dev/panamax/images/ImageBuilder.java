package dev.panamax.images;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Builds a {@link GuestImage} from Debian packages: the kernel from a linux-image package, the userland from
 * busybox-static, the named kernel modules with their dependencies, host files, and an optional init script.
 *
 * <p>The generated {@code /init} (see {@link #initScript}) prints {@value #INIT_REACHED}, mounts proc, sysfs and
 * devtmpfs, loads the modules, then runs {@code /panamax/script} and reports its exit status through the
 * Panamax exit port (I/O port {@value #EXIT_PORT_HEX}), or without a script starts an interactive shell on the
 * console (or, with {@value #SERIAL_SCRIPT_PARAM} on the kernel command line, first reads the script from the
 * serial console: {@link #READY_FOR_SCRIPT}); finally it reboots ({@code reboot -f}), which the VMM sees as an i8042 reset.
 *
 * <p>The image is written into a temporary directory next to the output and renamed at the end: on any error
 * nothing is left behind. Errors are exceptions with a one-line message: {@link IllegalArgumentException} for
 * bad input (unknown package or module, missing host file, compressed module), {@link IllegalStateException}
 * for a failing tool, {@link UncheckedIOException} for I/O.
 */
public final class ImageBuilder {

    private static final Logger log = LoggerFactory.getLogger(ImageBuilder.class);

    /** The kernel package used unless {@link #kernelPackage} names another. */
    public static final String DEFAULT_KERNEL_PACKAGE = "linux-image-amd64";
    /** The package whose /bin/busybox is the guest's userland. */
    public static final String DEFAULT_BUSYBOX_PACKAGE = "busybox-static";
    /** The line /init prints first; tests measure the time to it. */
    public static final String INIT_REACHED = "panamax: init reached";
    /** The Panamax exit port: an 8-bit OUT of the status to this I/O port ends the VM with that status. */
    public static final int EXIT_PORT = 0xF4;
    static final String EXIT_PORT_HEX = "0xF4";
    /** Where the init script is installed in the guest. */
    public static final String SCRIPT_GUEST_PATH = "/panamax/script";
    /**
     * The kernel command-line word that makes /init, when the image holds no {@link #SCRIPT_GUEST_PATH}, take its
     * script from the serial console ({@code panamax test --snapshot}).
     */
    public static final String SERIAL_SCRIPT_PARAM = "panamax.script=serial";
    /**
     * The line /init prints when it is ready for a script over the serial console (echo off, about to read): the
     * host then sends the script base64-encoded (RFC 4648 section 4), in lines of at most 76 characters, and then
     * {@value #SCRIPT_END_LINE}.
     */
    public static final String READY_FOR_SCRIPT = "panamax: ready for a script";
    /** The line that ends a script sent over the serial console. */
    public static final String SCRIPT_END_LINE = "panamax-script-end";

    private final DebianPackages packages;
    private String kernelPackage = DEFAULT_KERNEL_PACKAGE;
    private String busyboxPackage = DEFAULT_BUSYBOX_PACKAGE;
    private final List<String> modules = new ArrayList<>();
    private final Map<String, Path> adds = new LinkedHashMap<>();
    private Path initScript;

    /** A builder fetching packages through {@code packages}. */
    public ImageBuilder(DebianPackages packages) {
        this.packages = packages;
    }

    /** The kernel package ("name" or "name=version"); a metapackage is followed to the real kernel package. */
    public ImageBuilder kernelPackage(String name) {
        this.kernelPackage = name;
        return this;
    }

    /** The package providing a static /bin/busybox (default busybox-static). */
    public ImageBuilder busyboxPackage(String name) {
        this.busyboxPackage = name;
        return this;
    }

    /** Adds kernel modules by name ('-' and '_' equal); their dependencies come along. */
    public ImageBuilder modules(java.util.Collection<String> names) {
        modules.addAll(names);
        return this;
    }

    /** Adds one kernel module by name. */
    public ImageBuilder module(String name) {
        modules.add(name);
        return this;
    }

    /**
     * Copies a host file, or a directory tree, to {@code guestPath} (absolute or relative to the guest's /).
     * Files keep their executable bit as mode 0755, else get 0644; directories get 0755.
     */
    public ImageBuilder add(Path host, String guestPath) {
        String guest = Initramfs.normalize(guestPath);
        if (adds.containsKey(guest)) {
            throw new IllegalArgumentException("guest path '/" + guest + "' is added twice");
        }
        adds.put(guest, host);
        return this;
    }

    /**
     * Parses a command-line {@code HOST_PATH:GUEST_PATH} pair (split at the last ':') and {@link #add}s it.
     *
     * @throws IllegalArgumentException if there is no ':' or either side is empty
     */
    public ImageBuilder add(String spec) {
        int colon = spec.lastIndexOf(':');
        if (colon <= 0 || colon == spec.length() - 1) {
            throw new IllegalArgumentException("--add '" + spec + "' is not HOST_PATH:GUEST_PATH");
        }
        return add(Path.of(spec.substring(0, colon)), spec.substring(colon + 1));
    }

    /** A host file installed as /panamax/script and run by /init with {@code sh}; null for an interactive image. */
    public ImageBuilder initScript(Path script) {
        this.initScript = script;
        return this;
    }

    /**
     * Builds the image into directory {@code out}. An existing {@code out} is replaced only if it is empty or
     * an image directory (holds manifest.json).
     *
     * @return the verified image
     */
    public GuestImage build(Path out) {
        Path target = out.toAbsolutePath().normalize();
        checkInputs(target);
        Path parent = target.getParent();
        Path tmp;
        try {
            Files.createDirectories(parent);
            tmp = Files.createTempDirectory(parent, "." + target.getFileName() + ".tmp-");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a directory next to " + target + ": " + e.getMessage(), e);
        }
        try {
            buildInto(tmp);
            // createTempDirectory makes it 0700; an image is as readable as any build output.
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            replace(tmp, target);
            log.info("guest image written to {}", target);
            return GuestImage.verify(target);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot build guest image " + target + ": " + e.getMessage(), e);
        } finally {
            DebianPackages.deleteTree(tmp);
        }
    }

    /** Checks the host-side inputs before any download, so that bad input fails fast. */
    private void checkInputs(Path target) {
        for (Map.Entry<String, Path> a : adds.entrySet()) {
            if (!Files.exists(a.getValue())) {
                throw new IllegalArgumentException("--add " + a.getValue() + ":/" + a.getKey() + ": host path " + a.getValue() + " does not exist");
            }
        }
        if (initScript != null && !Files.isRegularFile(initScript)) {
            throw new IllegalArgumentException("init script " + initScript + " does not exist or is not a file");
        }
        if (Files.exists(target) && !isReplaceable(target)) {
            throw new IllegalArgumentException("output " + target + " exists and is not a guest image directory (no "
                    + GuestImage.MANIFEST + "); refusing to replace it");
        }
    }

    private static boolean isReplaceable(Path target) {
        if (!Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
            return false;
        }
        if (Files.isRegularFile(target.resolve(GuestImage.MANIFEST))) {
            return true;
        }
        try (Stream<Path> s = Files.list(target)) {
            return s.findAny().isEmpty();
        } catch (IOException e) {
            return false;
        }
    }

    private void buildInto(Path dir) throws IOException {
        List<ImageManifest.PackageInfo> pkgInfos = new ArrayList<>();

        // Kernel: follow the metapackage to the package holding /boot/vmlinuz-VER and /lib/modules/VER.
        List<DebPackage> chain = packages.fetchKernelChain(kernelPackage);
        for (int i = 0; i < chain.size(); i++) {
            pkgInfos.add(info(i == chain.size() - 1 ? "kernel" : "kernel-metapackage", chain.get(i)));
        }
        DebPackage kernelDeb = chain.getLast();
        Path kernelTree = packages.extract(kernelDeb);
        Path vmlinuz = findKernel(kernelTree, kernelDeb);
        String release = vmlinuz.getFileName().toString().substring("vmlinuz-".length());
        ModuleTree tree = ModuleTree.open(modulesDep(kernelTree, release, kernelDeb));
        List<KernelModule> mods = tree.resolve(modules);
        requireUncompressed(mods);

        // Userland: busybox and a symlink per applet.
        DebPackage busyboxDeb = packages.fetch(busyboxPackage);
        pkgInfos.add(info("busybox", busyboxDeb));
        Path busyboxTree = packages.extract(busyboxDeb);
        Path busybox = Stream.of("bin/busybox", "usr/bin/busybox").map(busyboxTree::resolve)
                .filter(Files::isRegularFile).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("package " + busyboxDeb.name() + " has no /bin/busybox"));

        Initramfs.Builder root = Initramfs.builder();
        for (String d : List.of("dev", "proc", "sys", "etc", "bin", "sbin", "usr/bin", "usr/sbin", "lib", "mnt", "run", "var")) {
            root.directory(d, 0755);
        }
        root.directory("tmp", 01777);
        root.directory("root", 0700);
        // The kernel opens /dev/console for init before devtmpfs is mounted (Documentation/admin-guide/devices.txt: 5,1).
        root.characterDevice("dev/console", 0600, 5, 1);
        root.file("bin/busybox", busybox, 0755);
        for (String applet : applets(busybox)) {
            if (!applet.equals("bin/busybox") && !applet.equals("linuxrc") && !root.contains(applet)) {
                root.symlink(applet, "/bin/busybox");
            }
        }
        List<ImageManifest.ModuleInfo> modInfos = new ArrayList<>();
        for (KernelModule m : mods) {
            String guest = "lib/modules/" + release + "/" + m.relativePath();
            root.file(guest, m.file(), 0644);
            modInfos.add(new ImageManifest.ModuleInfo(m.name(), "/" + guest));
        }
        root.file("init", initScript(release, mods).getBytes(StandardCharsets.UTF_8), 0755);

        ImageManifest.FileInfo scriptInfo = null;
        if (initScript != null) {
            root.file(SCRIPT_GUEST_PATH, initScript, 0755);
            scriptInfo = new ImageManifest.FileInfo(SCRIPT_GUEST_PATH, initScript.toAbsolutePath().toString(), Hashes.sha256(initScript));
        }
        List<ImageManifest.FileInfo> fileInfos = new ArrayList<>();
        for (Map.Entry<String, Path> a : adds.entrySet()) {
            addTree(root, a.getValue(), a.getKey(), fileInfos);
        }

        Files.copy(vmlinuz, dir.resolve(GuestImage.KERNEL));
        root.writeGzip(dir.resolve(GuestImage.INITRAMFS));

        Map<String, String> outputs = new LinkedHashMap<>();
        outputs.put(GuestImage.KERNEL, Hashes.sha256(dir.resolve(GuestImage.KERNEL)));
        outputs.put(GuestImage.INITRAMFS, Hashes.sha256(dir.resolve(GuestImage.INITRAMFS)));
        ImageManifest manifest = new ImageManifest(ImageManifest.FORMAT, release, pkgInfos, modInfos, fileInfos, scriptInfo, outputs);
        GuestImage.JSON.writeValue(dir.resolve(GuestImage.MANIFEST).toFile(), manifest);
    }

    /**
     * Rejects compressed module files: busybox insmod passes the file to init_module(2) as is, and cannot
     * decompress zstd; the guest kernel would refuse the compressed bytes.
     *
     * @throws IllegalArgumentException naming the first compressed module
     */
    static void requireUncompressed(List<KernelModule> mods) {
        for (KernelModule m : mods) {
            if (m.compressed()) {
                throw new IllegalArgumentException("kernel module " + m.relativePath() + " is compressed (" + m.compression()
                        + "); busybox insmod loads only uncompressed .ko files");
            }
        }
    }

    private static ImageManifest.PackageInfo info(String role, DebPackage p) {
        return new ImageManifest.PackageInfo(role, p.name(), p.version(), p.file().getFileName().toString(), p.sha256());
    }

    /**
     * The package's lib/modules/VER, with a modules.dep. Debian's kernel packages do not ship modules.dep (their
     * postinst runs depmod), so it is generated once into the unpacked tree with the host's
     * {@code depmod -b TREE VER} (package kmod; no root needed).
     */
    static Path modulesDep(Path kernelTree, String release, DebPackage deb) {
        Path root = kernelTree.resolve("lib/modules/" + release);
        if (!Files.isDirectory(root)) {
            throw new IllegalArgumentException("kernel package " + deb.name() + " " + deb.version() + " has no /lib/modules/" + release);
        }
        if (Files.isRegularFile(root.resolve("modules.dep"))) {
            return root;
        }
        String depmod = Stream.of("/usr/sbin/depmod", "/sbin/depmod").filter(p -> Files.isExecutable(Path.of(p)))
                .findFirst().orElse("depmod");
        log.info("generating modules.dep for {} with depmod", release);
        Command.Result r = Command.run(List.of(depmod, "-b", kernelTree.toString(), release), null, 600);
        if (r.exitCode() != 0 || !Files.isRegularFile(root.resolve("modules.dep"))) {
            throw new IllegalStateException("depmod -b " + kernelTree + " " + release + " failed: " + r.errorLine());
        }
        return root;
    }

    /** The package's single /boot/vmlinuz-VER. */
    private static Path findKernel(Path tree, DebPackage deb) throws IOException {
        Path boot = tree.resolve("boot");
        List<Path> kernels = new ArrayList<>();
        if (Files.isDirectory(boot)) {
            try (Stream<Path> s = Files.list(boot)) {
                s.filter(p -> p.getFileName().toString().startsWith("vmlinuz-")).sorted().forEach(kernels::add);
            }
        }
        if (kernels.size() != 1) {
            throw new IllegalArgumentException("kernel package " + deb.name() + " " + deb.version() + " has "
                    + kernels.size() + " /boot/vmlinuz-* files, expected exactly one");
        }
        return kernels.getFirst();
    }

    /** The applet paths of a busybox binary, "usr/bin/awk" etc. ({@code busybox --list-full}), sorted. */
    private static List<String> applets(Path busybox) {
        Command.Result r = Command.run(List.of(busybox.toString(), "--list-full"), null, 60);
        if (r.exitCode() != 0) {
            throw new IllegalStateException(busybox + " --list-full failed: " + r.errorLine());
        }
        return r.stdout().lines().map(String::strip).filter(s -> !s.isEmpty()).sorted().toList();
    }

    /** Adds a host file or directory tree at {@code guest}, recording each file in {@code infos}. */
    private static void addTree(Initramfs.Builder root, Path host, String guest, List<ImageManifest.FileInfo> infos) throws IOException {
        List<Path> all;
        try (Stream<Path> s = Files.walk(host)) {
            all = s.sorted().toList();
        }
        for (Path p : all) {
            String rel = host.relativize(p).toString();
            String g = rel.isEmpty() ? guest : guest + "/" + rel;
            if (Files.isSymbolicLink(p)) {
                root.symlink(g, Files.readSymbolicLink(p).toString());
            } else if (Files.isDirectory(p)) {
                root.directory(g, 0755);
            } else if (Files.isRegularFile(p)) {
                root.file(g, p, Files.isExecutable(p) ? 0755 : 0644);
                infos.add(new ImageManifest.FileInfo("/" + g, p.toAbsolutePath().toString(), Hashes.sha256(p)));
            } else {
                throw new IllegalArgumentException("--add: " + p + " is neither a file, a directory nor a symlink");
            }
        }
    }

    /** Moves the finished image {@code tmp} to {@code target}, replacing an old image there. */
    private static void replace(Path tmp, Path target) throws IOException {
        Path old = null;
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            old = target.resolveSibling("." + target.getFileName() + ".old-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
            Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
        }
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        if (old != null) {
            DebianPackages.deleteTree(old);
        }
    }

    /**
     * The text of the guest's /init, a busybox {@code sh} script.
     *
     * @param kernelRelease the kernel release (the /lib/modules directory)
     * @param modules       the modules to insmod, in load order
     */
    public static String initScript(String kernelRelease, List<KernelModule> modules) {
        StringBuilder sb = new StringBuilder();
        sb.append("""
                #!/bin/sh
                # Panamax guest /init, generated by dev.panamax.images.ImageBuilder.
                echo "%s"

                # panamax_exit N: report exit status N (0..255) to the VMM through the Panamax exit port,
                # an 8-bit write of N to I/O port 0xF4 (decimal 244). /dev/port maps file offset = port
                # number, so dd writes one byte at offset 244. printf %%o turns N into octal for the
                # "\\NNN" escape that makes the outer printf emit the raw byte N.
                panamax_exit() {
                    printf "\\\\$(printf %%o "$1")" | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc 2>/dev/null
                }

                export PATH=/bin:/sbin:/usr/bin:/usr/sbin
                mount -t proc proc /proc
                mount -t sysfs sysfs /sys
                mount -t devtmpfs devtmpfs /dev

                """.formatted(INIT_REACHED));
        for (KernelModule m : modules) {
            String path = "/lib/modules/" + kernelRelease + "/" + m.relativePath();
            sb.append("insmod ").append(path).append(" || echo \"panamax: insmod ").append(m.name()).append(" failed\"\n");
        }
        sb.append("""

                # With %1$s on the command line and no script in the image, the script comes over the
                # serial console: echo off, say so, read base64 lines up to the end line, decode.
                if [ ! -f %2$s ]; then
                    case " $(cat /proc/cmdline) " in
                    *" %1$s "*)
                        stty -echo 2>/dev/null || stty -F /dev/ttyS0 -echo
                        mkdir -p %3$s
                        echo "%4$s"
                        # read, not sed: busybox sed reads a line ahead, and no line comes after the end line.
                        while read -r line && [ "$line" != %5$s ]; do echo "$line"; done | base64 -d > %2$s
                        stty echo 2>/dev/null || stty -F /dev/ttyS0 echo
                        ;;
                    esac
                fi
                """.formatted(SERIAL_SCRIPT_PARAM, SCRIPT_GUEST_PATH,
                SCRIPT_GUEST_PATH.substring(0, SCRIPT_GUEST_PATH.lastIndexOf('/')), READY_FOR_SCRIPT, SCRIPT_END_LINE));
        sb.append("""

                if [ -f %s ]; then
                    sh %s
                    status=$?
                    echo "panamax: script exited with status $status"
                    panamax_exit "$status"
                else
                    setsid cttyhack sh
                    panamax_exit 0
                fi
                reboot -f
                # reboot -f returns only if the reboot failed; PID 1 must not exit (that panics the kernel).
                while true; do sleep 60; done
                """.formatted(SCRIPT_GUEST_PATH, SCRIPT_GUEST_PATH));
        return sb.toString();
    }
}
