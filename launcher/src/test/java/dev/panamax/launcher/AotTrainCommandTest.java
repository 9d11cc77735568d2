package dev.panamax.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

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
            new CommandLine(new Main()).parseArgs(args); // throws if an option was renamed
        }
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
