package dev.panamax.tests.harness;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Reads a child process's output line by line on a virtual thread, hands each line to a sink (the log)
 * as it arrives, and keeps all lines for the caller. Carriage returns are dropped; for a serial console
 * ({@code stripTerminalControls}) so are the terminal control sequences SeaBIOS and the kernel print
 * (ESC c, CSI sequences such as ESC [2J).
 */
final class OutputPump {

    private final List<String> lines = new ArrayList<>();
    private final Thread thread;

    /** ESC c (reset), ESC ( B and the like (charset), and CSI sequences ESC [ params letter. */
    private static final java.util.regex.Pattern CONTROLS =
            java.util.regex.Pattern.compile("\u001b(\\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z])");

    OutputPump(String name, InputStream in, boolean stripTerminalControls, Consumer<String> sink) {
        this.thread = Thread.ofVirtual().name(name).start(() -> {
            try (var reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = reader.readLine()) != null) {
                    line = line.replace("\r", "");
                    if (stripTerminalControls) {
                        line = CONTROLS.matcher(line).replaceAll("");
                    }
                    synchronized (lines) {
                        lines.add(line);
                    }
                    sink.accept(line);
                }
            } catch (IOException e) {
                // The process was killed and its pipe closed under us: what we have is all there is.
            }
        });
    }

    /** Waits (at most {@code millis}) for the stream to reach its end, then returns all lines read. */
    List<String> finish(long millis) throws InterruptedException {
        thread.join(millis);
        return snapshot();
    }

    /** The lines read so far. */
    List<String> snapshot() {
        synchronized (lines) {
            return List.copyOf(lines);
        }
    }
}

