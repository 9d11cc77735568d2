package dev.panamax.firmware.acpi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs ACPICA's {@code iasl} (Debian package acpica-tools, installed by scripts/setup) for the tests: compiles
 * ASL snippets and disassembles tables. Fails, not skips, when iasl is missing.
 */
final class Iasl {
    private Iasl() {
    }

    /** What one iasl run printed and returned. */
    record Result(int exitCode, String output) {
        /** @return the lines that report an error or a warning (iasl writes "Error", "Warning" with a number) */
        List<String> problems() {
            return output.lines().filter(l -> l.matches("(?i).*\\b(error|warning)\\b.*")
                    && !l.matches(".*\\b0 Errors?, 0 Warnings?.*")).toList();
        }

        /** Asserts exit code 0 and no error or warning line. */
        Result assertClean(String what) {
            assertEquals(0, exitCode, what + ": iasl exited " + exitCode + ":\n" + output);
            assertEquals(List.of(), problems(), what + ": iasl reported:\n" + output);
            return this;
        }
    }

    /**
     * Runs iasl with the arguments in {@code dir}.
     *
     * @return its exit code and its stdout and stderr together
     */
    static Result run(Path dir, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add("iasl");
        cmd.addAll(Arrays.asList(args));
        Process p;
        try {
            p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
        } catch (IOException e) {
            throw new AssertionError("iasl is needed to check the ACPI tables (apt-get install acpica-tools; "
                    + "scripts/setup installs it)", e);
        }
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "iasl timed out");
        return new Result(p.exitValue(), out);
    }

    /**
     * Compiles {@code body} inside a {@code DefinitionBlock} of an SSDT of revision 2, with named-reference
     * optimization off ({@code -on}, so that names stay as written, as {@link Aml} writes them), and returns the
     * AML after the 36-byte table header.
     */
    static byte[] compileBody(Path dir, String body) throws IOException, InterruptedException {
        Path asl = dir.resolve("snippet.asl");
        Files.writeString(asl, "DefinitionBlock (\"\", \"SSDT\", 2, \"PANAMX\", \"SNIPPET\", 1)\n{\n" + body + "\n}\n");
        Files.deleteIfExists(dir.resolve("snippet.aml"));
        run(dir, "-on", "snippet.asl").assertClean("compiling " + body);
        byte[] aml = Files.readAllBytes(dir.resolve("snippet.aml"));
        return Arrays.copyOfRange(aml, AcpiTable.HEADER_SIZE, aml.length);
    }
}
