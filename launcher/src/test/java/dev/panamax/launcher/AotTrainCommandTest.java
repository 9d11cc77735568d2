package dev.panamax.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
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

    @Test
    void trainingCommandLinesParse() {
        for (String[] args : AotTrainCommand.COMMAND_LINES) {
            Main.commandLine(args).parseArgs(args); // throws if an option was renamed
        }
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
