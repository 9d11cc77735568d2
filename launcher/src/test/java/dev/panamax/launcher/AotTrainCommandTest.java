package dev.panamax.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AotTrainCommandTest {
    @Test
    void trainingRunEndsWellWithoutKvmAndPrintsNothing() {
        StringWriter out = new StringWriter(), err = new StringWriter();
        assertEquals(0, Main.execute(new PrintWriter(out), new PrintWriter(err), "aot-train"));
        assertEquals("", out.toString());
        assertEquals("", err.toString());
    }

    /**
     * Each training command line parses (it throws if an option was renamed) to the subcommands it names, asks for
     * the help it names, and the {@code run} line reaches its command with every option's value.
     */
    @Test
    void trainingCommandLinesParse() {
        List<List<String>> subcommands = List.of(List.of(), List.of(), List.of("run"), List.of("test"), List.of("ctl"), List.of("image"),
                List.of("demo"), List.of("device"), List.of("device", "virtio-blk"), List.of("run"));
        assertEquals(subcommands.size(), AotTrainCommand.COMMAND_LINES.length);
        for (int i = 0; i < subcommands.size(); i++) {
            String[] args = AotTrainCommand.COMMAND_LINES[i];
            CommandLine.ParseResult parsed = Main.commandLine(args).parseArgs(args);
            List<String> names = new ArrayList<>();
            CommandLine.ParseResult leaf = parsed;
            while (leaf.hasSubcommand()) {
                leaf = leaf.subcommand();
                names.add(leaf.commandSpec().name());
            }
            String line = String.join(" ", args);
            assertEquals(subcommands.get(i), names, line);
            assertEquals(List.of(args).contains("--help"), leaf.isUsageHelpRequested(), line);
            assertEquals(List.of(args).contains("--version"), leaf.isVersionHelpRequested(), line);
        }
        String[] runLine = AotTrainCommand.COMMAND_LINES[AotTrainCommand.COMMAND_LINES.length - 1];
        RunCommand run = (RunCommand) Main.commandLine(runLine).parseArgs(runLine).subcommand().commandSpec().userObject();
        assertEquals(Path.of("/nonexistent/vmlinuz"), run.kernel);
        assertEquals(Path.of("/nonexistent/initrd"), run.initrd);
        assertEquals("console=ttyS0 quiet", run.cmdline);
        assertEquals(2, run.size.cpus);
        assertEquals(512L << 20, run.size.memory);
        assertEquals(Duration.ofSeconds(30), run.timeout);
        assertTrue(run.stats);
        assertEquals(List.of(), run.devices.specs());
    }

    @Test
    void subcommandsAreKeyedByTheirOwnNames() {
        for (String name : Main.SUBCOMMANDS) {
            Object command = Main.newSubcommand(name);
            assertEquals(name, new CommandLine(command).getCommandName(), command.getClass().getName());
        }
        CommandLine run = Main.commandLine("run", "--help");
        assertEquals(List.of("run"), List.copyOf(run.getSubcommands().keySet()), "only the named subcommand is built");
        assertEquals(Main.SUBCOMMANDS, List.copyOf(Main.commandLine("--help").getSubcommands().keySet()));
        assertEquals(Main.SUBCOMMANDS, List.copyOf(Main.commandLine("help", "run").getSubcommands().keySet()));
        assertEquals(Main.SUBCOMMANDS, List.copyOf(Main.commandLine("no-such-command").getSubcommands().keySet()));
        assertEquals(List.of(), List.copyOf(Main.commandLine("--version").getSubcommands().keySet()), "--version builds none");
        assertEquals(List.of(), List.copyOf(Main.commandLine("-V").getSubcommands().keySet()));
        assertEquals(Main.SUBCOMMANDS, List.copyOf(Main.commandLine("--version", "run").getSubcommands().keySet()));
    }

    @Test
    void versionPrintsTheVersionWithoutSubcommands() {
        java.io.StringWriter out = new java.io.StringWriter();
        java.io.PrintWriter w = new java.io.PrintWriter(out, true);
        assertEquals(0, Main.execute(w, w, "--version"));
        assertEquals("panamax 0.1.0", out.toString().strip());
    }

    @Test
    void unknownSubcommandIsAnErrorNamingIt() {
        StringWriter err = new StringWriter();
        int status = Main.execute(new PrintWriter(new StringWriter()), new PrintWriter(err), "rnu", "-k", "x");
        assertEquals(2, status, err.toString());
        assertTrue(err.toString().contains("rnu"), err.toString());
    }

    @Test
    void aotTrainIsHiddenFromHelp() {
        StringWriter out = new StringWriter();
        Main.execute(new PrintWriter(out), new PrintWriter(new StringWriter()), "--help");
        assertTrue(out.toString().contains("run"), out.toString());
        assertFalse(out.toString().contains("aot-train"), out.toString());
    }

    @Test
    void statsOptionReachesTheMachineConfig() {
        RunCommand run = new RunCommand();
        new CommandLine(run).parseArgs("-k", "/vmlinuz", "--stats");
        assertTrue(run.stats);
        TestCommand test = new TestCommand();
        new CommandLine(test).parseArgs("--image", "d", "--script", "s");
        assertFalse(test.stats);
    }
}
