package dev.panamax.images;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/** Runs a host tool (apt-get, dpkg-deb, busybox) to completion and captures its output. Package-private. */
final class Command {

    /** The outcome: exit status, and stdout / stderr as UTF-8 text. */
    record Result(int exitCode, String stdout, String stderr) {

        /** The last line of stderr that starts with "E: " (apt's error lines), else the last non-blank line. */
        String errorLine() {
            String last = "";
            for (String line : stderr.split("\n")) {
                if (line.startsWith("E: ")) {
                    return line;
                }
                if (!line.isBlank()) {
                    last = line.strip();
                }
            }
            return last.isEmpty() ? "exit status " + exitCode : last;
        }
    }

    private Command() {
    }

    /**
     * Runs {@code command} in directory {@code cwd} with stdin closed.
     *
     * @throws IllegalStateException if the program cannot be started (e.g. not installed) or runs past
     *                               {@code timeoutSeconds} (it is then killed)
     */
    static Result run(List<String> command, Path cwd, long timeoutSeconds) {
        ProcessBuilder pb = new ProcessBuilder(command).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        if (cwd != null) {
            pb.directory(cwd.toFile());
        }
        pb.environment().put("LC_ALL", "C");
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new IllegalStateException("cannot run '" + command.getFirst() + "' (" + e.getMessage()
                    + "); building guest images needs the Debian tools apt-get and dpkg-deb", e);
        }
        CompletableFuture<String> out = drain(p.getInputStream());
        CompletableFuture<String> err = drain(p.getErrorStream());
        try {
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException("'" + String.join(" ", command) + "' did not finish within " + timeoutSeconds + " s");
            }
            return new Result(p.exitValue(), out.get(), err.get());
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running '" + String.join(" ", command) + "'", e);
        } catch (ExecutionException e) {
            throw new UncheckedIOException("cannot read the output of '" + command.getFirst() + "'",
                    e.getCause() instanceof IOException io ? io : new IOException(e.getCause()));
        }
    }

    private static CompletableFuture<String> drain(InputStream in) {
        CompletableFuture<String> f = new CompletableFuture<>();
        Thread.ofVirtual().start(() -> {
            try (in) {
                f.complete(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                f.completeExceptionally(e);
            }
        });
        return f;
    }
}
