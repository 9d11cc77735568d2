package dev.panamax.launcher;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.Machine;
import dev.panamax.vmm.MachineConfig;
import dev.panamax.vmm.MemoryBackend;
import dev.panamax.vmm.ReadyScript;
import dev.panamax.vmm.Verdict;
import dev.panamax.vmm.snapshot.Snapshot;
import dev.panamax.vmm.snapshot.SnapshotDirs;
import dev.panamax.vmm.snapshot.SnapshotException;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;

/**
 * {@code panamax test --snapshot}: the guest boots once to the point where its init is ready for a script
 * ({@link ImageBuilder#READY_FOR_SCRIPT}, with {@link ImageBuilder#SERIAL_SCRIPT_PARAM} on the command line), a snapshot
 * of it is saved in the cache, and each run after that restores it and sends the script over the serial console
 * ({@link ReadyScript}). The verdicts are a booted run's.
 *
 * <p>Cache: {@code $XDG_CACHE_HOME/panamax/snapshots/KEY/} (else {@code ~/.cache/panamax/...}, as the package cache),
 * {@link #key KEY} naming everything the guest's state at its ready line depends on. A snapshot is published by a rename
 * once whole; one that cannot be opened or restored (damaged, from another Panamax, not the machine asked for) is
 * deleted and made again by booting, in the same run, with one line saying so.
 */
final class TestSnapshots {
    private static final Logger log = LoggerFactory.getLogger(TestSnapshots.class);

    /** The key's format: a new one when what a snapshot holds or how the script reaches the guest changes. */
    static final String KEY_FORMAT = "panamax-test-snapshot-v1";
    /** The largest script sent over the console: about 1.4 MB of base64 at the UART's pace. */
    static final int MAX_SCRIPT_BYTES = 1 << 20;

    private TestSnapshots() {
    }

    /** The run's machine: everything of {@link MachineConfig} but kernel, initrd and command line. */
    record Shape(int cpus, long memoryBytes, Duration timeout, boolean stats, MemoryBackend memoryBackend, Path apiSocket) {
    }

    /** {@code $XDG_CACHE_HOME/panamax/snapshots}, or {@code ~/.cache/panamax/snapshots}. */
    static Path cacheDir() {
        return DebianPackages.defaultCacheDir().resolve("snapshots");
    }

    /** The command line the snapshot's guest boots with: the test's and {@link ImageBuilder#SERIAL_SCRIPT_PARAM}. */
    static String bootCmdline(String cmdline) {
        return cmdline.strip() + " " + ImageBuilder.SERIAL_SCRIPT_PARAM;
    }

    /**
     * @return the lowercase hex SHA-256 of {@value #KEY_FORMAT}, the image's kernel and initramfs SHA-256 (its
     *         manifest's outputs), the boot command line, vCPUs and RAM bytes, one per line
     */
    static String key(String kernelSha256, String initramfsSha256, String bootCmdline, int cpus, long memoryBytes) {
        String text = String.join("\n", KEY_FORMAT, kernelSha256, initramfsSha256, bootCmdline,
                Integer.toString(cpus), Long.toString(memoryBytes)) + "\n";
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }

    /** Restores the image's snapshot, or boots to make it; runs {@code script} either way. @return the exit status */
    static int run(GuestImage image, byte[] script, String cmdline, Shape shape, Path cache) {
        if (script.length > MAX_SCRIPT_BYTES) {
            throw new PanamaxException("--snapshot sends the script over the serial console: at most "
                    + (MAX_SCRIPT_BYTES >> 10) + " KiB, not " + script.length + " bytes");
        }
        if (image.manifest().initScript() != null) {
            throw new PanamaxException("--snapshot: image " + image.dir() + " has a script of its own ("
                    + image.manifest().initScript().guestPath() + "), which its init runs instead of waiting for one;"
                    + " build it without --init-script");
        }
        String boot = bootCmdline(cmdline);
        Path dir = cache.resolve(key(image.manifest().outputs().get(GuestImage.KERNEL),
                image.manifest().outputs().get(GuestImage.INITRAMFS), boot, shape.cpus(), shape.memoryBytes()));
        if (java.nio.file.Files.exists(dir)) {
            try {
                Verdict v = restore(dir, boot, shape, script);
                return Machine.report(v);
            } catch (SnapshotException e) {
                rebuild(dir, e.getMessage());
            } catch (ConfigException e) {
                if (!"restore".equals(e.setting())) {
                    throw e;
                }
                rebuild(dir, e.getMessage());
            }
        }
        log.info("booting {} to save a test snapshot at its init in {}", image.dir(), dir);
        MachineConfig config = new MachineConfig(image.kernel(), image.initramfs(), boot, shape.cpus(), shape.memoryBytes(),
                shape.timeout(), false, List.of(), shape.stats(), shape.memoryBackend(), shape.apiSocket(),
                new ReadyScript(dir, script));
        return Machine.report(Machine.boot(config));
    }

    /**
     * @throws SnapshotException or {@link ConfigException} ("restore") before anything ran, for a snapshot that cannot
     *                           be used
     */
    private static Verdict restore(Path dir, String bootCmdline, Shape shape, byte[] script) {
        Snapshot snapshot = Snapshot.open(dir);
        SnapshotManifest.Machine m = snapshot.manifest().machine();
        if (!bootCmdline.equals(m.cmdline()) || m.cpus() != shape.cpus() || m.memoryBytes() != shape.memoryBytes()) {
            throw new SnapshotException("it holds a machine of " + m.cpus() + " vCPUs, " + (m.memoryBytes() >> 20)
                    + " MiB, command line '" + m.cmdline() + "', not the one asked for");
        }
        log.info("restoring the test snapshot {}", dir);
        MachineConfig config = MachineConfig.forSnapshot(m, shape.timeout(), false, List.of(), shape.stats(),
                shape.memoryBackend(), shape.apiSocket()).withReadyScript(new ReadyScript(null, script));
        return Machine.restore(config, snapshot);
    }

    private static void rebuild(Path dir, String reason) {
        log.warn("test snapshot {} cannot be used ({}): deleted, and rebuilt by booting", dir, reason);
        SnapshotDirs.delete(dir);
    }
}
