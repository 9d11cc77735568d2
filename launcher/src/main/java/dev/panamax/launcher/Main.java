package dev.panamax.launcher;

import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.KvmException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;

/**
 * The {@code panamax} command. Each subcommand is one job: {@code run} boots a guest. Errors the
 * user can act on are one line on stderr and exit status {@value Verdict#ERROR_STATUS}.
 */
@Command(name = "panamax", mixinStandardHelpOptions = true, version = "panamax 0.1.0",
        description = "A minimal VMM on Linux KVM for PCI device passthrough.",
        subcommands = {RunCommand.class, TestCommand.class, ImageCommand.class, DemoCommand.class, DeviceCommand.class,
                AotTrainCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
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
        System.exit(execute(args));
    }

    /** Runs the command line and returns the exit status. */
    public static int execute(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler(Main::handle);
        return cl.execute(args);
    }

    /** {@link #execute(String...)} with the help, usage and error text going to {@code out} and {@code err}. */
    static int execute(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler(Main::handle);
        cl.setOut(out);
        cl.setErr(err);
        return cl.execute(args);
    }

    private static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        if (e instanceof PanamaxException || e instanceof LinuxException || e instanceof KvmException || e instanceof IOException
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
}
