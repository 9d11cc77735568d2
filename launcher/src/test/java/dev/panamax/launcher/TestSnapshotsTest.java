package dev.panamax.launcher;

import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.MemoryBackend;
import dev.panamax.vmm.ReadyScript;
import dev.panamax.vmm.Verdict;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code panamax test --snapshot}: its cache key, and what it does before a machine runs. */
class TestSnapshotsTest {
    private static final String K = "a".repeat(64);
    private static final String I = "b".repeat(64);
    private static final String CMD = TestSnapshots.bootCmdline(TestCommand.TEST_CMDLINE);

    @Test
    void keyChangesWithEachInput() {
        String base = TestSnapshots.key(K, I, CMD, 1, 512L << 20);
        assertTrue(base.matches("[0-9a-f]{64}"), base);
        assertEquals(base, TestSnapshots.key(K, I, CMD, 1, 512L << 20), "the same inputs, the same key");
        Set<String> keys = new HashSet<>(List.of(base,
                TestSnapshots.key("c".repeat(64), I, CMD, 1, 512L << 20),
                TestSnapshots.key(K, "c".repeat(64), CMD, 1, 512L << 20),
                TestSnapshots.key(K, I, CMD + " x", 1, 512L << 20),
                TestSnapshots.key(K, I, CMD, 2, 512L << 20),
                TestSnapshots.key(K, I, CMD, 1, 1024L << 20)));
        assertEquals(6, keys.size(), keys.toString());
        // Fields are separated: moving a character from one to the next gives another key.
        assertFalse(TestSnapshots.key(K, I, CMD, 1, 512L << 20).equals(TestSnapshots.key(K, I, CMD + "1", 1, 12L << 20)));
    }

    @Test
    void bootCmdlineAddsTheSerialScriptWord() {
        assertEquals("console=ttyS0 quiet panic=-1 reboot=k panamax.script=serial", CMD);
    }

    /** The guest's /init and the VMM speak the same protocol. */
    @Test
    void guestAndVmmAgreeOnTheProtocolLines() {
        assertEquals(ImageBuilder.READY_FOR_SCRIPT, ReadyScript.READY_LINE);
        assertEquals(ImageBuilder.SCRIPT_END_LINE, ReadyScript.END_LINE);
        String init = ImageBuilder.initScript("6.1.0-test", List.of());
        assertTrue(init.contains(ImageBuilder.SERIAL_SCRIPT_PARAM) && init.contains(ReadyScript.END_LINE), init);
    }

    /**
     * A damaged snapshot at the key's place is deleted and the run boots instead (here into a kernel that is no bzImage,
     * refused before KVM is opened).
     */
    @Test
    void damagedSnapshotIsDeletedAndTheRunBoots(@TempDir Path tmp) throws Exception {
        GuestImage image = GuestImage.verify(fakeImage(tmp.resolve("image"), false));
        Path cache = tmp.resolve("cache");
        Path dir = cache.resolve(TestSnapshots.key(image.manifest().outputs().get(GuestImage.KERNEL),
                image.manifest().outputs().get(GuestImage.INITRAMFS), CMD, 1, 64L << 20));
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("manifest.json"), "{ not json");
        Files.writeString(dir.resolve("ram"), "x");
        ConfigException e = assertThrows(ConfigException.class, () -> TestSnapshots.run(image, "exit 3\n".getBytes(),
                TestCommand.TEST_CMDLINE, new TestSnapshots.Shape(1, 64L << 20, Duration.ofSeconds(5), false,
                        MemoryBackend.AUTO, null), cache));
        assertEquals("kernel", e.setting(), e.getMessage());
        assertFalse(Files.exists(dir), "the damaged snapshot was deleted");
    }

    @Test
    void refusesDevicesAndImagesWithAScriptOfTheirOwn(@TempDir Path tmp) throws IOException {
        Path image = fakeImage(tmp.resolve("image"), false);
        Path script = Files.writeString(tmp.resolve("s.sh"), "exit 3\n");
        assertError("--snapshot with --device is not supported yet", "test", "--image", image.toString(),
                "--script", script.toString(), "--snapshot", "--device", "vfio-pci,host=0000:01:00.0");
        Path scripted = fakeImage(tmp.resolve("scripted"), true);
        StringWriter err = new StringWriter();
        int status = Main.execute(new PrintWriter(new StringWriter()), new PrintWriter(err), "test", "--image",
                scripted.toString(), "--script", script.toString(), "--snapshot");
        assertEquals(Verdict.ERROR_STATUS, status, err.toString());
        assertTrue(err.toString().contains("has a script of its own (/panamax/script)"), err.toString());
    }

    /** An image directory GuestImage.verify accepts, with bytes that are no kernel. */
    private static Path fakeImage(Path dir, boolean withScript) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(GuestImage.KERNEL), "not a bzImage");
        Files.writeString(dir.resolve(GuestImage.INITRAMFS), "not a cpio");
        String script = withScript ? "{\"guestPath\":\"/panamax/script\",\"source\":\"/s.sh\",\"sha256\":\"00\"}" : "null";
        Files.writeString(dir.resolve(GuestImage.MANIFEST), "{\"format\":1,\"initScript\":" + script + ",\"outputs\":{\""
                + GuestImage.KERNEL + "\":\"" + sha256(dir.resolve(GuestImage.KERNEL)) + "\",\"" + GuestImage.INITRAMFS
                + "\":\"" + sha256(dir.resolve(GuestImage.INITRAMFS)) + "\"}}");
        return dir;
    }

    private static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void assertError(String line, String... args) {
        StringWriter err = new StringWriter();
        int status = Main.execute(new PrintWriter(new StringWriter()), new PrintWriter(err), args);
        assertEquals(Verdict.ERROR_STATUS, status, err.toString());
        assertEquals("panamax: error: " + line + System.lineSeparator(), err.toString());
    }
}
