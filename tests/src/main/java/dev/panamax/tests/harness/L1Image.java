package dev.panamax.tests.harness;

import dev.panamax.images.Initramfs;
import dev.panamax.images.KernelModule;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * L1's initramfs, as {@link NestedHarness}'s class comment describes it ("What L1 is", "How the command gets
 * in"): the base image (busybox, the modules, the generated {@code /init}), built once and cached under a hash
 * of its inputs, and the small per-run archive ({@code /panamax/run.conf}, {@code /panamax/run.sh}) appended
 * to it for each run.
 */
final class L1Image {
    /** The harness's logger: these lines are the harness's, as they were before the harness was split. */
    private static final Logger LOG = LoggerFactory.getLogger(NestedHarness.class);

    /** The 9p options: virtio transport, 9P2000.L, 512000-byte messages (the default 8 KiB is slow). */
    private static final String NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000";

    /** Bumped whenever the layout of the cached image changes, so old cache files are not reused. */
    private static final String IMAGE_FORMAT = "panamax-l1/1";

    private final String kernelRelease;
    private final List<KernelModule> modules;
    private final Path busybox;
    private final Path cacheDirectory;

    /** The cached base image, built on first use. */
    private Path image;

    /**
     * @param kernelRelease  L1's kernel release (names the cache file, and is hashed)
     * @param modules        the modules to load, in load order (plain .ko files)
     * @param busybox        a statically linked busybox
     * @param cacheDirectory where the base image is cached
     */
    L1Image(String kernelRelease, List<KernelModule> modules, Path busybox, Path cacheDirectory) {
        this.kernelRelease = kernelRelease;
        this.modules = modules;
        this.busybox = busybox;
        this.cacheDirectory = cacheDirectory;
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
        Path cached = cacheDirectory.resolve("l1-" + kernelRelease + "-" + hash.substring(0, 16) + ".cpio.gz");
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
        update(md, kernelRelease);
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
                """.formatted(L1Console.ERROR));
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
                """.formatted(NINEP_OPTIONS, L1Console.BEGIN, L1Console.EXIT));
        return s.toString();
    }

    /** The per-run archive: /panamax/run.conf and /panamax/run.sh. */
    static byte[] runArchive(GuestCommand command, String nonce, boolean interactive, List<Path> writable) {
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
    static void writeInitrd(Path base, byte[] runCpio, Path out) throws IOException {
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
}
