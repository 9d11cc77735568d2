package dev.panamax.launcher;

import dev.panamax.kvm.Kvm;
import dev.panamax.vmm.Machine;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.CodeSource;
import java.util.Enumeration;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * {@code panamax aot-train} (hidden): the training run of the JVM's AOT cache (JEP 483, 514, 515). Run under
 * {@code -XX:AOTCacheOutput=FILE} by {@code ./panamax} (scripts/lib.sh, {@code panamax_startup_options}), it does
 * what every start does, without a guest and without needing KVM: parses each command's options with picocli
 * and prints their help (to nowhere), starts logback, loads (without initializing) every class of Panamax's own
 * jars, and opens {@code /dev/kvm} through FFM (which fails fast on a host without KVM, the same path a
 * {@code run} takes). The JVM then writes the classes it loaded and linked, and the method profiles, into the
 * cache. Exit status 0, whatever the host.
 */
@Command(name = "aot-train", hidden = true, description = "Training run for the JVM's AOT cache (used by ./panamax).")
public final class AotTrainCommand implements Callable<Integer> {
    /** Command lines parsed (and executed, for the help ones) in the training run. */
    static final String[][] COMMAND_LINES = {
            {"--version"}, {"--help"}, {"run", "--help"}, {"test", "--help"}, {"ctl", "--help"}, {"image", "--help"}, {"demo", "--help"},
            {"device", "--help"}, {"device", "virtio-blk", "--help"},
            {"run", "-k", "/nonexistent/vmlinuz", "-i", "/nonexistent/initrd", "-p", "console=ttyS0 quiet",
                    "-c", "2", "-m", "512M", "--timeout", "30s", "--stats"},
    };

    @Override
    public Integer call() {
        PrintWriter nowhere = new PrintWriter(Writer.nullWriter());
        for (String[] args : COMMAND_LINES) {
            Main.execute(nowhere, nowhere, args);
        }
        LoggerFactory.getLogger(Machine.class).debug("AOT training run");
        int classes = 0;
        for (Class<?> anchor : new Class<?>[]{Main.class, Machine.class, dev.panamax.devices.Serial16550.class, Kvm.class,
                dev.panamax.core.bus.Bus.class, dev.panamax.pci.PciBus.class, dev.panamax.firmware.LinuxBoot.class,
                dev.panamax.vfio.VfioPciFunction.class,
                dev.panamax.vfiouser.client.VfioUserClient.class, dev.panamax.images.ImageBuilder.class}) {
            classes += loadAll(anchor);
        }
        try (Kvm kvm = Kvm.open()) {
            LoggerFactory.getLogger(AotTrainCommand.class).debug("KVM opened");
        } catch (RuntimeException | LinkageError e) {
            LoggerFactory.getLogger(AotTrainCommand.class).debug("no KVM in the training run: {}", e.getMessage());
        }
        LoggerFactory.getLogger(AotTrainCommand.class).debug("AOT training: {} classes loaded", classes);
        return 0;
    }

    /** Loads every {@code dev/panamax/**.class} of the jar {@code anchor} came from; returns how many loaded. */
    private static int loadAll(Class<?> anchor) {
        Set<String> names = new LinkedHashSet<>();
        CodeSource source = anchor.getProtectionDomain().getCodeSource();
        if (source == null) {
            return 0;
        }
        try {
            Path jar = Path.of(source.getLocation().toURI());
            if (!Files.isRegularFile(jar)) {
                return 0; // a classes directory (tests run from target/classes): nothing to train
            }
            try (JarFile f = new JarFile(jar.toFile())) {
                for (Enumeration<JarEntry> e = f.entries(); e.hasMoreElements(); ) {
                    String n = e.nextElement().getName();
                    if (n.startsWith("dev/panamax/") && n.endsWith(".class") && !n.endsWith("module-info.class")) {
                        names.add(n.substring(0, n.length() - ".class".length()).replace('/', '.'));
                    }
                }
            }
        } catch (IOException | URISyntaxException | IllegalArgumentException e) {
            return 0;
        }
        int loaded = 0;
        for (String n : names) {
            try {
                Class.forName(n, false, anchor.getClassLoader());
                loaded++;
            } catch (ClassNotFoundException | LinkageError e) {
                // an optional dependency missing: the cache just goes without it
            }
        }
        return loaded;
    }
}
