package dev.panamax.launcher;

import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.KvmException;
import dev.panamax.vmm.ConfigException;
import dev.panamax.vmm.MachineException;
import dev.panamax.vmm.Verdict;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.util.List;

/**
 * The {@code panamax} command. Each subcommand is one job: {@code run} boots a guest. Errors the
 * user can act on are one line on stderr and exit status {@value Verdict#ERROR_STATUS}.
 */
@Command(name = "panamax", mixinStandardHelpOptions = true, version = "panamax 0.1.0",
        description = "A minimal VMM on Linux KVM for PCI device passthrough.")
public final class Main implements Runnable {
    /**
     * The subcommands' names (each class's {@code @Command} name), in the order {@code --help} lists them. Picocli
     * builds a command's whole model (its options, mixins and converters, by reflection) when the command is
     * added, and that was most of the JVM's start before a boot; so {@link #commandLine} adds only the one named
     * on the command line, and all of them when none is (for {@code --help}, {@code help} and errors).
     */
    static final List<String> SUBCOMMANDS = List.of("run", "test", "ctl", "image", "demo", "device", "aot-train", "help");

    /**
     * @return a new instance of the subcommand {@code name}, one of {@link #SUBCOMMANDS}. A switch rather than a map
     * of constructor references: the JVM's AOT cache cannot hold a resolved reference to picocli's
     * {@code HelpCommand} (picocli's classes are too old a class-file version to be archived), and its
     * training run crashed on one (JDK 25.0.3, archiveHeapWriter.cpp).
     */
    static Object newSubcommand(String name) {
        return switch (name) {
            case "run" -> new RunCommand();
            case "test" -> new TestCommand();
            case "ctl" -> new CtlCommand();
            case "image" -> new ImageCommand();
            case "demo" -> new DemoCommand();
            case "device" -> new DeviceCommand();
            case "aot-train" -> new AotTrainCommand();
            case "help" -> new CommandLine.HelpCommand();
            default -> throw new IllegalArgumentException("no subcommand " + name);
        };
    }

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing command (try: panamax run --help)");
    }

    static {
        // netty-buffer (the vfio-user wire encoding) would reach for sun.misc.Unsafe, which JDK 25 warns about on
        // the user's terminal; its plain-Java buffers are all Panamax needs.
        System.setProperty("io.netty.noUnsafe", "true");
    }

    public static void main(String[] args) {
        // The last net (issue 15, defect 9): every long-lived thread contains its own errors; any other thread that
        // dies says so in one line instead of a stack trace.
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> org.slf4j.LoggerFactory.getLogger(Main.class)
                .error("thread {} died: {}", t.getName(), e.toString()));
        System.exit(execute(args));
    }

    /** Runs the command line and returns the exit status. */
    public static int execute(String... args) {
        return commandLine(args).execute(args);
    }

    /** {@link #execute(String...)} with the help, usage and error text going to {@code out} and {@code err}. */
    static int execute(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = commandLine(args);
        cl.setOut(out);
        cl.setErr(err);
        return cl.execute(args);
    }

    /**
     * The {@code panamax} command for {@code args}: with only the subcommand {@code args[0]} names; with none for
     * {@code --version} (or {@code -V}) alone, which prints a constant; or with every subcommand when {@code args[0]}
     * names none (or is {@code help}): {@code --help} and errors list them all.
     */
    static CommandLine commandLine(String... args) {
        CommandLine cl = new CommandLine(new Main());
        boolean versionOnly = args.length == 1 && (args[0].equals("--version") || args[0].equals("-V"));
        String named = args.length > 0 && SUBCOMMANDS.contains(args[0]) && !args[0].equals("help") ? args[0] : null;
        for (String name : SUBCOMMANDS) {
            if (!versionOnly && (named == null || named.equals(name))) {
                cl.addSubcommand(name, newSubcommand(name));
            }
        }
        cl.setExecutionExceptionHandler(Main::handle);
        return cl;
    }

    private static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        if (e instanceof ConfigException c) {
            err.println("panamax: error: " + c.messageNaming(option(c.setting())));
        } else if (e instanceof PanamaxException || e instanceof MachineException || e instanceof LinuxException || e instanceof KvmException || e instanceof IOException
                || e instanceof UncheckedIOException || e instanceof IllegalArgumentException) {
            err.println("panamax: error: " + e.getMessage());
        } else {
            err.println("panamax: internal error: " + e);
        }
        if (LoggingOptions.debug) {
            e.printStackTrace(err);
        }
        err.flush();
        return Verdict.ERROR_STATUS;
    }

    /**
     * @param setting a {@link dev.panamax.vmm.MachineConfig} setting, as a {@link ConfigException} names it
     * @return the option that sets it, e.g. {@code --cpus} for "cpus"
     */
    static String option(String setting) {
        return switch (setting) {
            case "cpus" -> "--cpus";
            case "memory" -> "--memory";
            case "kernel" -> "--kernel";
            case "initrd" -> "--initrd";
            case "device" -> "--device";
            case "memoryBackend" -> "--memory-backend";
            case "restore" -> "--restore";
            case "incoming" -> "--incoming";
            case "apiSocket" -> "--api-socket";
            default -> setting;
        };
    }
}
