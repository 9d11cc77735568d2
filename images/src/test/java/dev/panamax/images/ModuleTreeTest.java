package dev.panamax.images;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

class ModuleTreeTest {

    /** The newest /lib/modules/VER of this machine that has a modules.dep (linux-image-amd64 installs one). */
    static Path hostModules() throws IOException {
        Path lib = Path.of("/lib/modules");
        assertTrue(Files.isDirectory(lib), "this machine has no /lib/modules (install linux-image-amd64)");
        try (Stream<Path> s = Files.list(lib)) {
            Path newest = s.filter(p -> Files.isRegularFile(p.resolve("modules.dep")))
                    .max(Comparator.comparing(p -> p.getFileName().toString(), ModuleTreeTest::compareVersions))
                    .orElse(null);
            assertTrue(newest != null, "no /lib/modules/*/modules.dep on this machine (install linux-image-amd64)");
            return newest;
        }
    }

    /** Compares "6.1.0-56-amd64" style releases number by number. */
    static int compareVersions(String a, String b) {
        String[] x = a.split("[.-]");
        String[] y = b.split("[.-]");
        for (int i = 0; i < Math.min(x.length, y.length); i++) {
            int c = x[i].matches("\\d+") && y[i].matches("\\d+")
                    ? Long.compare(Long.parseLong(x[i]), Long.parseLong(y[i])) : x[i].compareTo(y[i]);
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(x.length, y.length);
    }

    static List<String> names(List<KernelModule> mods) {
        return mods.stream().map(KernelModule::name).toList();
    }

    /** Every module comes after all the dependencies modules.dep lists for it, and each comes once. */
    static void assertLoadOrder(ModuleTree tree, List<KernelModule> mods) throws IOException {
        List<String> paths = mods.stream().map(KernelModule::relativePath).toList();
        assertEquals(paths.size(), paths.stream().distinct().count(), "each module once: " + paths);
        for (String line : Files.readAllLines(tree.root().resolve("modules.dep"))) {
            String path = line.substring(0, line.indexOf(':'));
            int at = paths.indexOf(path);
            if (at < 0) {
                continue;
            }
            for (String dep : line.substring(line.indexOf(':') + 1).trim().split("\\s+")) {
                if (!dep.isEmpty()) {
                    int depAt = paths.indexOf(dep);
                    assertTrue(depAt >= 0 && depAt < at, dep + " must come before " + path + " in " + paths);
                }
            }
        }
        for (KernelModule m : mods) {
            assertTrue(Files.isRegularFile(m.file()), m.file() + " exists");
            assertEquals(tree.root().resolve(m.relativePath()), m.file());
        }
    }

    @Test
    void nvmeNeedsNvmeCoreFirst() throws IOException {
        ModuleTree tree = ModuleTree.open(hostModules());
        assertEquals(tree.root().getFileName().toString(), tree.kernelRelease());
        List<KernelModule> mods = tree.resolve(List.of("nvme"));
        List<String> names = names(mods);
        assertEquals("nvme", names.getLast(), names.toString());
        assertTrue(names.contains("nvme-core"), names.toString());
        assertTrue(names.indexOf("nvme-core") < names.indexOf("nvme"));
        KernelModule nvme = mods.getLast();
        assertTrue(nvme.relativePath().startsWith("kernel/drivers/nvme/host/nvme.ko"), nvme.relativePath());
        assertLoadOrder(tree, mods);
    }

    @Test
    void ninePAndVfioPciInLoadOrder() throws IOException {
        ModuleTree tree = ModuleTree.open(hostModules());
        List<KernelModule> mods = tree.resolve(List.of("9p", "vfio-pci"));
        List<String> names = names(mods);
        assertTrue(names.indexOf("9pnet") >= 0 && names.indexOf("9pnet") < names.indexOf("9p"), names.toString());
        assertTrue(names.indexOf("vfio") >= 0 && names.indexOf("vfio") < names.indexOf("vfio-pci"), names.toString());
        assertTrue(names.indexOf("vfio-pci-core") < names.indexOf("vfio-pci"), names.toString());
        assertEquals("vfio-pci", names.getLast());
        assertLoadOrder(tree, mods);
    }

    @Test
    void dashAndUnderscoreAreEqual() throws IOException {
        ModuleTree tree = ModuleTree.open(hostModules());
        assertEquals(tree.resolve(List.of("vfio-pci")), tree.resolve(List.of("vfio_pci")));
        assertEquals(tree.resolve(List.of("nvme_core")), tree.resolve(List.of("nvme-core")));
    }

    @Test
    void unknownModuleOnHostTree() throws IOException {
        ModuleTree tree = ModuleTree.open(hostModules());
        var e = assertThrows(IllegalArgumentException.class, () -> tree.resolve(List.of("nvme", "foo")));
        assertEquals("unknown kernel module 'foo' (not in /lib/modules/" + tree.kernelRelease() + "/modules.dep)", e.getMessage());
    }

    /** A synthetic tree: every case of modules.dep the resolver must handle. */
    static Path fakeTree(Path tmp) throws IOException {
        Path root = Files.createDirectories(tmp.resolve("6.99.0-test"));
        Files.writeString(root.resolve("modules.dep"), """
                kernel/a/top-mod.ko: kernel/b/mid_mod.ko.xz kernel/c/leaf.ko.zst
                kernel/b/mid_mod.ko.xz: kernel/c/leaf.ko.zst
                kernel/c/leaf.ko.zst:
                kernel/d/other.ko: kernel/c/leaf.ko.zst
                kernel/e/gz.ko.gz:

                """);
        Files.writeString(root.resolve("modules.builtin"), "kernel/x/virtio_pci.ko\n");
        return root;
    }

    @Test
    void syntheticTreeOrderDedupAndCompression(@TempDir Path tmp) throws IOException {
        ModuleTree tree = ModuleTree.open(fakeTree(tmp));
        assertEquals("6.99.0-test", tree.kernelRelease());
        List<KernelModule> mods = tree.resolve(List.of("other", "top_mod", "leaf", "mid-mod"));
        assertEquals(List.of("leaf", "other", "mid_mod", "top-mod"), names(mods));
        assertEquals(List.of("zst", "", "xz", ""), mods.stream().map(KernelModule::compression).toList());
        assertTrue(mods.get(0).compressed());
        assertFalse(mods.get(1).compressed());
        assertEquals("gz", tree.resolve(List.of("gz")).getFirst().compression());
        assertEquals(new KernelModule("leaf", tree.root().resolve("kernel/c/leaf.ko.zst"), "kernel/c/leaf.ko.zst"), mods.getFirst());
        assertEquals(names(tree.resolve(List.of("top-mod.ko"))), names(tree.resolve(List.of("top-mod"))), ".ko suffix accepted");
        assertTrue(tree.resolve(List.of()).isEmpty());
    }

    @Test
    void builtinModulesNeedNoLoading(@TempDir Path tmp) throws IOException {
        ModuleTree tree = ModuleTree.open(fakeTree(tmp));
        assertTrue(tree.isBuiltin("virtio-pci"));
        assertFalse(tree.contains("virtio-pci"));
        assertEquals(List.of("leaf"), names(tree.resolve(List.of("virtio_pci", "leaf"))));
    }

    @Test
    void syntheticErrors(@TempDir Path tmp) throws IOException {
        Path root = fakeTree(tmp);
        ModuleTree tree = ModuleTree.open(root);
        var unknown = assertThrows(IllegalArgumentException.class, () -> tree.resolve(List.of("foo")));
        assertEquals("unknown kernel module 'foo' (not in " + root.resolve("modules.dep") + ")", unknown.getMessage());

        var missing = assertThrows(IllegalArgumentException.class, () -> ModuleTree.open(tmp.resolve("nope")));
        assertTrue(missing.getMessage().contains("modules.dep"), missing.getMessage());

        Path bad = Files.createDirectories(tmp.resolve("bad"));
        Files.writeString(bad.resolve("modules.dep"), "kernel/a.ko: \nno colon here\n");
        var malformed = assertThrows(IllegalArgumentException.class, () -> ModuleTree.open(bad));
        assertTrue(malformed.getMessage().contains("line 2"), malformed.getMessage());

        Path notKo = Files.createDirectories(tmp.resolve("notko"));
        Files.writeString(notKo.resolve("modules.dep"), "kernel/a.o:\n");
        assertThrows(IllegalArgumentException.class, () -> ModuleTree.open(notKo));

        Path dangling = Files.createDirectories(tmp.resolve("dangling"));
        Files.writeString(dangling.resolve("modules.dep"), "kernel/a.ko: kernel/b.ko\n");
        var dep = assertThrows(IllegalArgumentException.class, () -> ModuleTree.open(dangling).resolve(List.of("a")));
        assertTrue(dep.getMessage().contains("kernel/b.ko"), dep.getMessage());

        Path cycle = Files.createDirectories(tmp.resolve("cycle"));
        Files.writeString(cycle.resolve("modules.dep"), "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n");
        var cyc = assertThrows(IllegalArgumentException.class, () -> ModuleTree.open(cycle).resolve(List.of("a")));
        assertTrue(cyc.getMessage().contains("cycle"), cyc.getMessage());
    }
}
