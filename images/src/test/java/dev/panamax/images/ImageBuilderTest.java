package dev.panamax.images;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

import org.apache.commons.compress.archivers.cpio.CpioConstants;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Builds real images from Debian's linux-image-amd64 and busybox-static (downloaded once into the user's
 * package cache, ~/.cache/panamax, and reused by later runs).
 */
class ImageBuilderTest {

    static final List<String> MODULES = List.of("nvme", "9p", "vfio-pci");

    static DebianPackages packages;
    static Path inputs;
    static Path image1;
    static Path image2;

    @TempDir
    static Path shared;

    @BeforeAll
    static void buildTwice() throws IOException {
        packages = DebianPackages.inDefaultCache();
        inputs = Files.createDirectories(shared.resolve("inputs"));
        Files.writeString(inputs.resolve("hello.txt"), "hello guest\n");
        Path tool = Files.writeString(inputs.resolve("tool.sh"), "#!/bin/sh\necho tool\n");
        tool.toFile().setExecutable(true);
        Files.createDirectories(inputs.resolve("tree/sub"));
        Files.writeString(inputs.resolve("tree/sub/data"), "data");
        Files.writeString(inputs.resolve("script.sh"), "echo script ran\nexit 7\n");
        image1 = builder().build(shared.resolve("out/image1")).dir();
        image2 = builder().build(shared.resolve("out/image2")).dir();
    }

    static ImageBuilder builder() {
        return new ImageBuilder(packages)
                .modules(MODULES)
                .add(inputs.resolve("hello.txt") + ":/etc/hello.txt")
                .add(inputs.resolve("tool.sh"), "usr/local/bin/tool")
                .add(inputs.resolve("tree") + ":/opt/tree")
                .initScript(inputs.resolve("script.sh"));
    }

    static Map<String, InitramfsTest.Read> initramfs(Path image) throws IOException {
        try (InputStream in = new GZIPInputStream(Files.newInputStream(image.resolve(GuestImage.INITRAMFS)))) {
            return InitramfsTest.readCpio(in);
        }
    }

    @Test
    void buildingTwiceGivesTheSameBytes() throws IOException {
        for (String f : List.of(GuestImage.KERNEL, GuestImage.INITRAMFS, GuestImage.MANIFEST)) {
            if (!f.equals(GuestImage.MANIFEST)) {
                assertEquals(Hashes.sha256(image1.resolve(f)), Hashes.sha256(image2.resolve(f)), f);
            }
        }
        assertEquals(GuestImage.verify(image1).manifest(), GuestImage.verify(image2).manifest());
        try (var s = Files.list(image1.getParent())) {
            assertEquals(List.of("image1", "image2"), s.map(p -> p.getFileName().toString()).sorted().toList(),
                    "no temporary directories left");
        }
    }

    @Test
    void manifestRecordsInputsAndOutputs() throws IOException {
        GuestImage image = GuestImage.verify(image1);
        ImageManifest m = image.manifest();
        assertEquals(ImageManifest.FORMAT, m.format());
        List<String> roles = m.packages().stream().map(ImageManifest.PackageInfo::role).toList();
        assertEquals(List.of("kernel-metapackage", "kernel", "busybox"), roles);
        assertEquals("linux-image-amd64", m.packages().get(0).name());
        assertEquals("linux-image-" + m.kernelRelease(), m.packages().get(1).name());
        assertEquals("busybox-static", m.packages().get(2).name());
        for (ImageManifest.PackageInfo p : m.packages()) {
            assertEquals(Hashes.sha256(packages.cacheDir().resolve("debs").resolve(p.file())), p.sha256(), p.file());
            assertFalse(p.version().isEmpty());
        }
        assertEquals("rwxr-xr-x", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(image.dir())));
        assertEquals("rw-r--r--", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(image.initramfs())));
        assertEquals(Hashes.sha256(image.kernel()), m.outputs().get("vmlinuz"));
        assertEquals(Hashes.sha256(image.initramfs()), m.outputs().get("initramfs.cpio.gz"));
        assertEquals(List.of("/etc/hello.txt", "/opt/tree/sub/data", "/usr/local/bin/tool"),
                m.files().stream().map(ImageManifest.FileInfo::guestPath).sorted().toList());
        for (ImageManifest.FileInfo f : m.files()) {
            assertEquals(Hashes.sha256(Path.of(f.source())), f.sha256(), f.guestPath());
        }
        assertEquals("/panamax/script", m.initScript().guestPath());
        assertEquals(Hashes.sha256(inputs.resolve("script.sh")), m.initScript().sha256());
        List<String> modNames = m.modules().stream().map(ImageManifest.ModuleInfo::name).toList();
        assertTrue(modNames.indexOf("nvme-core") < modNames.indexOf("nvme"), modNames.toString());
        assertTrue(modNames.containsAll(List.of("nvme", "9p", "vfio-pci", "9pnet", "vfio")), modNames.toString());
        // the kernel is a bzImage (x86 boot protocol: "HdrS" at offset 0x202)
        byte[] head = new byte[0x206];
        try (InputStream in = Files.newInputStream(image.kernel())) {
            assertEquals(head.length, in.readNBytes(head, 0, head.length));
        }
        assertEquals("HdrS", new String(head, 0x202, 4, StandardCharsets.US_ASCII));
    }

    @Test
    void initramfsHoldsUserlandModulesInitAndAddedFiles() throws IOException {
        ImageManifest m = GuestImage.verify(image1).manifest();
        Map<String, InitramfsTest.Read> entries = initramfs(image1);
        List<String> names = new ArrayList<>(entries.keySet());
        assertEquals(names.stream().sorted().toList(), names, "sorted");

        InitramfsTest.Read init = entries.get("init");
        assertEquals(CpioConstants.C_ISREG | 0755, init.entry().getMode());
        String initText = new String(init.data(), StandardCharsets.UTF_8);
        assertEquals(ImageBuilder.initScript(m.kernelRelease(),
                ModuleTree.open(ImageBuilder.modulesDep(packages.extract(packagesByRole(m, "kernel")), m.kernelRelease(), packagesByRole(m, "kernel")))
                        .resolve(MODULES)), initText);
        List<String> commands = initText.lines().filter(l -> !l.isBlank() && !l.startsWith("#")).toList();
        assertEquals("echo \"panamax: init reached\"", commands.get(0), "first thing /init does");

        assertEquals(CpioConstants.C_ISREG | 0755, entries.get("bin/busybox").entry().getMode());
        for (String applet : List.of("bin/sh", "sbin/insmod", "bin/dd", "bin/mount", "sbin/reboot", "usr/bin/setsid", "bin/cttyhack", "usr/bin/printf")) {
            InitramfsTest.Read r = entries.get(applet);
            assertNotNull(r, applet + " is in the initramfs");
            assertEquals(CpioConstants.C_ISLNK | 0777, r.entry().getMode(), applet);
            assertEquals("/bin/busybox", new String(r.data(), StandardCharsets.UTF_8));
        }
        assertTrue(entries.get("dev/console").entry().isCharacterDevice());
        for (String d : List.of("dev", "proc", "sys")) {
            assertTrue(entries.get(d).entry().isDirectory(), d);
        }

        // modules at their guest paths, insmod'ed in manifest (load) order
        int last = -1;
        for (ImageManifest.ModuleInfo mod : m.modules()) {
            assertTrue(entries.containsKey(mod.path().substring(1)), mod.path());
            int at = initText.indexOf("insmod " + mod.path() + " ");
            assertTrue(at > last, "insmod order of " + mod.path());
            last = at;
        }

        assertEquals("hello guest\n", new String(entries.get("etc/hello.txt").data(), StandardCharsets.UTF_8));
        assertEquals(CpioConstants.C_ISREG | 0644, entries.get("etc/hello.txt").entry().getMode());
        assertEquals(CpioConstants.C_ISREG | 0755, entries.get("usr/local/bin/tool").entry().getMode());
        assertEquals("data", new String(entries.get("opt/tree/sub/data").data(), StandardCharsets.UTF_8));
        assertEquals("echo script ran\nexit 7\n", new String(entries.get("panamax/script").data(), StandardCharsets.UTF_8));
    }

    static DebPackage packagesByRole(ImageManifest m, String role) {
        ImageManifest.PackageInfo p = m.packages().stream().filter(i -> i.role().equals(role)).findFirst().orElseThrow();
        return packages.describe(packages.cacheDir().resolve("debs").resolve(p.file()));
    }

    @Test
    void verifyDetectsTamperingAndMissingManifest(@TempDir Path tmp) throws IOException {
        Path copy = Files.createDirectories(tmp.resolve("copy"));
        for (String f : List.of(GuestImage.KERNEL, GuestImage.INITRAMFS, GuestImage.MANIFEST)) {
            Files.copy(image1.resolve(f), copy.resolve(f));
        }
        GuestImage.verify(copy);
        Files.write(copy.resolve(GuestImage.INITRAMFS), new byte[]{0}, java.nio.file.StandardOpenOption.APPEND);
        var e = assertThrows(IllegalArgumentException.class, () -> GuestImage.verify(copy));
        assertTrue(e.getMessage().contains("initramfs.cpio.gz has SHA-256"), e.getMessage());
        Files.delete(copy.resolve(GuestImage.KERNEL));
        Files.copy(image1.resolve(GuestImage.INITRAMFS), copy.resolve(GuestImage.INITRAMFS), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        var gone = assertThrows(IllegalArgumentException.class, () -> GuestImage.verify(copy));
        assertTrue(gone.getMessage().contains("vmlinuz does not exist"), gone.getMessage());
        Files.delete(copy.resolve(GuestImage.MANIFEST));
        var none = assertThrows(IllegalArgumentException.class, () -> GuestImage.verify(copy));
        assertEquals("not a guest image: " + copy.resolve(GuestImage.MANIFEST) + " does not exist", none.getMessage());
        Files.writeString(copy.resolve(GuestImage.MANIFEST), "{ not json");
        var bad = assertThrows(IllegalArgumentException.class, () -> GuestImage.verify(copy));
        assertTrue(bad.getMessage().startsWith("unreadable guest image manifest"), bad.getMessage());
        assertFalse(bad.getMessage().contains("\n"));
    }

    @Test
    void rebuildingOverAnImageReplacesIt(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("img");
        new ImageBuilder(packages).build(out);
        GuestImage second = new ImageBuilder(packages).module("nvme").build(out);
        assertTrue(second.manifest().modules().stream().anyMatch(mm -> mm.name().equals("nvme")));
        assertNull(second.manifest().initScript());
        assertTrue(new String(readInit(out), StandardCharsets.UTF_8).contains("setsid cttyhack sh"));
        try (var s = Files.list(tmp)) {
            assertEquals(List.of(out), s.toList());
        }
    }

    static byte[] readInit(Path image) throws IOException {
        return initramfs(image).get("init").data();
    }

    /** Runs {@code action} expecting an IllegalArgumentException, and checks nothing was left in {@code dir}. */
    static String failsCleanly(Path dir, org.junit.jupiter.api.function.Executable action) throws IOException {
        List<Path> before;
        try (var s = Files.list(dir)) {
            before = s.sorted().toList();
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, action);
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        try (var s = Files.list(dir)) {
            assertEquals(before, s.sorted().toList(), "nothing left behind after: " + e.getMessage());
        }
        return e.getMessage();
    }

    @Test
    void badInputFailsWithOneLineAndLeavesNothing(@TempDir Path tmp) throws IOException {
        Path out = tmp.resolve("img");
        String pkg = failsCleanly(tmp, () -> new ImageBuilder(packages).kernelPackage("linux-image-no-such-panamax").build(out));
        assertTrue(pkg.startsWith("unknown Debian package 'linux-image-no-such-panamax'"), pkg);

        String mod = failsCleanly(tmp, () -> new ImageBuilder(packages).modules(List.of("nvme", "foo")).build(out));
        assertTrue(mod.matches("unknown kernel module 'foo' \\(not in .*/lib/modules/[^/]+/modules.dep\\)"), mod);

        String add = failsCleanly(tmp, () -> new ImageBuilder(packages).add(tmp.resolve("missing") + ":/x").build(out));
        assertTrue(add.contains("host path " + tmp.resolve("missing") + " does not exist"), add);

        String script = failsCleanly(tmp, () -> new ImageBuilder(packages).initScript(tmp.resolve("nope.sh")).build(out));
        assertTrue(script.contains("nope.sh"), script);

        String spec = failsCleanly(tmp, () -> new ImageBuilder(packages).add("no-colon"));
        assertEquals("--add 'no-colon' is not HOST_PATH:GUEST_PATH", spec);

        String dotdot = failsCleanly(tmp, () -> new ImageBuilder(packages).add(inputs.resolve("hello.txt") + ":/a/../b"));
        assertTrue(dotdot.contains("'..'"), dotdot);

        String clash = failsCleanly(tmp, () -> new ImageBuilder(packages).add(inputs.resolve("hello.txt") + ":/init").build(out));
        assertTrue(clash.contains("'init' is added twice"), clash);

        Path notImage = Files.createDirectories(tmp.resolve("precious"));
        Files.writeString(notImage.resolve("keep.txt"), "mine");
        String refuse = failsCleanly(tmp, () -> new ImageBuilder(packages).build(notImage));
        assertTrue(refuse.contains("refusing to replace"), refuse);
        assertEquals("mine", Files.readString(notImage.resolve("keep.txt")));
    }

    @Test
    void compressedModulesAreRejected(@TempDir Path tmp) throws IOException {
        ModuleTree tree = ModuleTree.open(ModuleTreeTest.fakeTree(tmp));
        var e = assertThrows(IllegalArgumentException.class, () -> ImageBuilder.requireUncompressed(tree.resolve(List.of("top-mod"))));
        assertEquals("kernel module kernel/c/leaf.ko.zst is compressed (zst); busybox insmod loads only uncompressed .ko files", e.getMessage());
        ImageBuilder.requireUncompressed(tree.resolve(List.of("other")).subList(1, 2)); // plain .ko passes
    }

    /** The exit-port function writes byte N at offset 0xF4 of its target, under dash and under busybox sh. */
    @Test
    void exitPortFunctionWritesTheStatusByte(@TempDir Path tmp) throws IOException, InterruptedException {
        String init = ImageBuilder.initScript("6.1.0-test", List.of());
        int start = init.indexOf("panamax_exit() {");
        String function = init.substring(start, init.indexOf("\n}\n", start) + 3);
        assertTrue(function.contains("seek=244 count=1"), function);
        Path busybox = packages.extract(packages.fetch("busybox-static")).resolve("bin/busybox");
        for (List<String> shell : List.of(List.of("/bin/sh"), List.of(busybox.toString(), "sh"))) {
            for (int n : new int[]{0, 1, 7, 42, 128, 255}) {
                Path port = tmp.resolve("port");
                Files.deleteIfExists(port);
                Files.createFile(port);
                List<String> cmd = new ArrayList<>(shell);
                cmd.add("-c");
                cmd.add(function.replace("/dev/port", port.toString()) + "panamax_exit " + n + "\n");
                Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertEquals(0, p.waitFor(), out);
                byte[] bytes = Files.readAllBytes(port);
                assertEquals(0xF4 + 1, bytes.length, shell + " n=" + n);
                assertEquals(n, bytes[0xF4] & 0xff, shell + " n=" + n);
            }
        }
    }

    /** /init keeps the image's script path, and without one takes the script over the console when the command line asks. */
    @Test
    void initScriptHasTheSerialScriptPathAndTheOldOne() {
        String init = ImageBuilder.initScript("6.1.0-test", List.of());
        assertTrue(init.contains("if [ -f /panamax/script ]; then\n    sh /panamax/script"), init);
        assertTrue(init.contains("*\" panamax.script=serial \"*)"), init);
        assertTrue(init.contains("if [ ! -f /panamax/script ]; then"), init);
        assertTrue(init.contains("echo \"" + ImageBuilder.READY_FOR_SCRIPT + "\""), init);
        assertTrue(init.indexOf("stty -echo") < init.indexOf(ImageBuilder.READY_FOR_SCRIPT), "echo off before the marker");
        assertTrue(init.indexOf(ImageBuilder.READY_FOR_SCRIPT) < init.indexOf("sh /panamax/script"), init);
    }

    /**
     * The reading half of the serial script path, run by the image's busybox sh with the console a pipe: base64 lines
     * of at most 76 characters and the end line give back the script byte for byte (on the guest's console, a tty in
     * canonical mode, each read returns one line; busybox sed would wait for a line after the end line, which never
     * comes: this test gives it none).
     */
    @Test
    void serialScriptLinesDecodeUnderBusybox(@TempDir Path tmp) throws IOException, InterruptedException {
        String init = ImageBuilder.initScript("6.1.0-test", List.of());
        String read = init.lines().filter(l -> l.contains("| base64 -d >")).findFirst().orElseThrow().strip();
        Path busybox = packages.extract(packages.fetch("busybox-static")).resolve("bin/busybox");
        byte[] script = new byte[1000];
        for (int i = 0; i < script.length; i++) {
            script[i] = (byte) (i * 7 + 3);
        }
        String b64 = java.util.Base64.getEncoder().encodeToString(script);
        StringBuilder in = new StringBuilder();
        for (int i = 0; i < b64.length(); i += 76) {
            in.append(b64, i, Math.min(b64.length(), i + 76)).append('\n');
        }
        in.append(ImageBuilder.SCRIPT_END_LINE).append('\n');
        Path out = tmp.resolve("script");
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        for (String applet : List.of("base64")) {
            Files.createSymbolicLink(bin.resolve(applet), busybox);
        }
        Process p = new ProcessBuilder(busybox.toString(), "sh", "-c",
                "export PATH=" + bin + "; " + read.replace(ImageBuilder.SCRIPT_GUEST_PATH, out.toString()))
                .redirectErrorStream(true).start();
        p.getOutputStream().write(in.toString().getBytes(StandardCharsets.US_ASCII));
        p.getOutputStream().flush();
        // The console stays open: the end line alone must end the reading (no end of file, no line after it).
        boolean ended = p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS);
        p.getOutputStream().close();
        String rest = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(ended, "the reader waited past the end line: " + rest);
        assertEquals(0, p.exitValue(), rest);
        assertArrayEquals(script, Files.readAllBytes(out));
    }
}
