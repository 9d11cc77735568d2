package dev.panamax.vmm;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.function.Consumer;

/**
 * The guest's serial console on the host terminal: bytes the UART transmits go to standard output
 * as they come, and whole lines are handed to a watcher (which looks for the kernel's panic line
 * and the init marker); a daemon thread feeds standard input to the UART.
 */
final class Console {
    private static final int MAX_LINE = 1024;

    private final OutputStream out = new FileOutputStream(FileDescriptor.out);
    private final Consumer<String> lineWatcher;
    private final StringBuilder line = new StringBuilder();
    private volatile boolean outputBroken;

    /** @param lineWatcher receives each line the guest prints, without its line end */
    Console(Consumer<String> lineWatcher) {
        this.lineWatcher = lineWatcher;
    }

    /** One byte from the guest's UART. Called on a vCPU thread, under the UART's lock. */
    void guestOutput(int b) {
        if (!outputBroken) {
            try {
                out.write(b); // unbuffered: one write(2) per byte, far cheaper than the exit that brought it
            } catch (IOException e) {
                outputBroken = true; // stdout closed (e.g. a pipe's reader left): keep running, stop writing
            }
        }
        if (b == '\n') {
            int end = line.length() > 0 && line.charAt(line.length() - 1) == '\r' ? line.length() - 1 : line.length();
            lineWatcher.accept(line.substring(0, end));
            line.setLength(0);
        } else if (line.length() < MAX_LINE) {
            line.append((char) b);
        }
    }

    /**
     * Starts a daemon thread that copies {@code in} to {@code sink} until end of input. Line input
     * of a terminal in its usual (cooked) mode is enough for an interactive busybox shell.
     */
    static void pumpInput(InputStream in, Sink sink) {
        Thread t = Thread.ofPlatform().daemon().name("console-input").unstarted(() -> {
            byte[] buffer = new byte[256];
            try {
                int n;
                while ((n = in.read(buffer)) > 0) {
                    sink.receive(buffer, n);
                }
            } catch (IOException e) {
                // standard input closed: the guest just gets no more input
            }
        });
        t.start();
    }

    /** Where typed bytes go (the UART's receiver). */
    interface Sink {
        void receive(byte[] data, int length);
    }
}
