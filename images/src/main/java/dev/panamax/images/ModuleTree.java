package dev.panamax.images;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A kernel's module tree, {@code /lib/modules/VER}, read through its {@code modules.dep} (written by depmod,
 * see depmod(8) and modules.dep(5)). Each line is {@code "path.ko: dep1.ko dep2.ko ..."} with paths relative
 * to the tree's root, the dependencies listed transitively.
 *
 * <p>{@link #resolve} gives modules in load order, dependencies first, as {@code modprobe} would insert them.
 * Names match as modprobe matches them: '-' and '_' are the same character.
 */
public final class ModuleTree {

    /** The suffixes depmod writes for module files: plain and the CONFIG_MODULE_COMPRESS_* variants. */
    private static final List<String> SUFFIXES = List.of(".ko", ".ko.xz", ".ko.zst", ".ko.gz");

    private final Path root;
    private final String kernelRelease;
    /** Canonical name ('-' as '_') -> the module's modules.dep path. */
    private final Map<String, String> pathByName;
    /** modules.dep path -> its dependency paths, as listed. */
    private final Map<String, List<String>> depsByPath;
    /** Canonical names of modules built into the kernel (modules.builtin); nothing to load for them. */
    private final Set<String> builtin;

    private ModuleTree(Path root, Map<String, String> pathByName, Map<String, List<String>> depsByPath, Set<String> builtin) {
        this.root = root;
        this.kernelRelease = root.getFileName().toString();
        this.pathByName = pathByName;
        this.depsByPath = depsByPath;
        this.builtin = builtin;
    }

    /**
     * Reads {@code modulesRoot/modules.dep} (and modules.builtin if present).
     *
     * @param modulesRoot a directory like {@code /lib/modules/6.1.0-56-amd64}; its last component is taken as
     *                    the kernel release
     * @throws IllegalArgumentException if modules.dep is missing or has a malformed line
     * @throws UncheckedIOException     if reading fails
     */
    public static ModuleTree open(Path modulesRoot) {
        Path root = modulesRoot.toAbsolutePath().normalize();
        Path dep = root.resolve("modules.dep");
        if (!Files.isRegularFile(dep)) {
            throw new IllegalArgumentException("not a kernel module tree: " + dep + " does not exist");
        }
        Map<String, String> pathByName = new LinkedHashMap<>();
        Map<String, List<String>> depsByPath = new LinkedHashMap<>();
        Set<String> builtin = new HashSet<>();
        try {
            int lineNo = 0;
            for (String line : Files.readAllLines(dep, StandardCharsets.UTF_8)) {
                lineNo++;
                if (line.isBlank()) {
                    continue;
                }
                int colon = line.indexOf(':');
                if (colon <= 0) {
                    throw new IllegalArgumentException(dep + " line " + lineNo + ": expected 'module.ko: deps...', got '" + line + "'");
                }
                String path = line.substring(0, colon).trim();
                String rest = line.substring(colon + 1).trim();
                List<String> deps = rest.isEmpty() ? List.of() : List.of(rest.split("\\s+"));
                depsByPath.put(path, deps);
                pathByName.putIfAbsent(canonical(moduleName(path, dep, lineNo)), path);
            }
            Path builtinFile = root.resolve("modules.builtin");
            if (Files.isRegularFile(builtinFile)) {
                for (String line : Files.readAllLines(builtinFile, StandardCharsets.UTF_8)) {
                    if (!line.isBlank()) {
                        builtin.add(canonical(moduleName(line.trim(), builtinFile, 0)));
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + dep + ": " + e.getMessage(), e);
        }
        return new ModuleTree(root, pathByName, depsByPath, builtin);
    }

    /** The tree's root directory (absolute). */
    public Path root() {
        return root;
    }

    /** The kernel release, the name of the root directory (e.g. "6.1.0-56-amd64"). */
    public String kernelRelease() {
        return kernelRelease;
    }

    /** Whether {@code name} is a loadable module of this tree ('-' and '_' equal). */
    public boolean contains(String name) {
        return pathByName.containsKey(canonical(name));
    }

    /** Whether {@code name} is built into the kernel (listed in modules.builtin), so needs no loading. */
    public boolean isBuiltin(String name) {
        return builtin.contains(canonical(name));
    }

    /**
     * The named modules and all their dependencies, each once, in load order (every module after all of
     * its dependencies). Names of built-in modules contribute nothing.
     *
     * <p>Order: depth-first, the requested names in the given order; a module's dependencies are visited
     * from the end of its modules.dep list to the front, which is the order modprobe inserts them in.
     *
     * @param names module names, with or without a .ko suffix; '-' and '_' are equal
     * @throws IllegalArgumentException for a name that is neither in modules.dep nor built in, or a
     *                                  dependency that has no modules.dep line of its own
     */
    public List<KernelModule> resolve(Collection<String> names) {
        List<KernelModule> order = new ArrayList<>();
        Set<String> done = new HashSet<>();
        Set<String> visiting = new HashSet<>();
        for (String name : names) {
            String path = pathByName.get(canonical(stripSuffix(name)));
            if (path == null) {
                if (isBuiltin(stripSuffix(name))) {
                    continue;
                }
                throw new IllegalArgumentException("unknown kernel module '" + name + "' (not in "
                        + root.resolve("modules.dep") + ")");
            }
            visit(path, done, visiting, order);
        }
        return List.copyOf(order);
    }

    private void visit(String path, Set<String> done, Set<String> visiting, List<KernelModule> order) {
        if (done.contains(path)) {
            return;
        }
        if (!visiting.add(path)) {
            throw new IllegalArgumentException("dependency cycle through " + path + " in " + root.resolve("modules.dep"));
        }
        List<String> deps = depsByPath.get(path);
        if (deps == null) {
            throw new IllegalArgumentException("kernel module " + path + " is a dependency but has no line of its own in "
                    + root.resolve("modules.dep"));
        }
        for (int i = deps.size() - 1; i >= 0; i--) {
            visit(deps.get(i), done, visiting, order);
        }
        visiting.remove(path);
        done.add(path);
        order.add(new KernelModule(moduleName(path, null, 0), root.resolve(path), path));
    }

    /** modprobe's name equivalence: '-' and '_' are the same. */
    static String canonical(String name) {
        return name.replace('-', '_');
    }

    private static String stripSuffix(String name) {
        for (String suffix : SUFFIXES) {
            if (name.endsWith(suffix)) {
                return name.substring(0, name.length() - suffix.length());
            }
        }
        return name;
    }

    /** "kernel/drivers/nvme/host/nvme-core.ko.zst" -> "nvme-core". */
    private static String moduleName(String path, Path file, int lineNo) {
        String base = path.substring(path.lastIndexOf('/') + 1);
        for (String suffix : SUFFIXES) {
            if (base.endsWith(suffix) && base.length() > suffix.length()) {
                return base.substring(0, base.length() - suffix.length());
            }
        }
        throw new IllegalArgumentException((file == null ? "" : file + (lineNo > 0 ? " line " + lineNo : "") + ": ")
                + "'" + path + "' is not a kernel module file name (.ko, .ko.xz, .ko.zst or .ko.gz)");
    }
}
