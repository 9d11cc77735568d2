package dev.panamax.vmm;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.function.Consumer;

/**
 * The guest's serial console on the host terminal: bytes the UART transmits go to standard output
 * as they come (through a {@link ConsoleFilter} when standard output is a terminal, so that the guest
 * cannot drive the host's terminal; raw to a file or pipe), and whole lines (raw) are handed to a watcher (which looks for the kernel's panic line
 * and the init marker); a daemon thread feeds standard input to the UART.
 */
final class Console {
    private static final int MAX_LINE = 1024;

    private final OutputStream out;
    /** Null when {@link #out} is not a terminal. */
    private final ConsoleFilter filter;
    private final ByteArrayOutputStream shown = new ByteArrayOutputStream(2);
    private final Consumer<String> lineWatcher;
    private final StringBuilder line = new StringBuilder();
    private volatile boolean outputBroken;

    /** @param lineWatcher receives each line the guest prints, without its line end */
    Console(Consumer<String> lineWatcher) {
        this(new FileOutputStream(FileDescriptor.out), stdoutIsTerminal(), lineWatcher);
    }

    /**
     * @param out         where the guest's bytes go
     * @param terminal    whether {@code out} is a terminal
     * @param lineWatcher receives each line the guest prints, without its line end
     */
    Console(OutputStream out, boolean terminal, Consumer<String> lineWatcher) {
        this.out = out;
        this.filter = terminal ? new ConsoleFilter() : null;
        this.lineWatcher = lineWatcher;
    }

    /** @return whether fd 1 is a terminal: {@code isatty(3)}, which {@link System#console()} cannot tell alone (it also looks at fd 0) */
    static boolean stdoutIsTerminal() {
        try {
            Linker linker = Linker.nativeLinker();
            MethodHandle isatty = linker.downcallHandle(linker.defaultLookup().find("isatty").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            return (int) isatty.invokeExact(1) == 1;
        } catch (Throwable t) {
            return true; // cannot tell: filter, the safe side
        }
    }

    /** One byte from the guest's UART. Called on a vCPU thread, under the UART's lock. */
    void guestOutput(int b) {
        if (!outputBroken) {
            try {
                if (filter == null) {
                    out.write(b); // unbuffered: one write(2) per byte, far cheaper than the exit that brought it
                } else {
                    shown.reset();
                    filter.accept(b, shown);
                    if (shown.size() > 0) {
                        shown.writeTo(out);
                    }
                }
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
     * of a terminal in its usual (cooked) mode is enough for an interactive busybox shell. Anything the sink throws,
     * an Error included, ends the input with one line; the guest keeps running.
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
            } catch (Throwable e) {
                // Contained (issue 15, defect 9): the guest keeps running without input, and the user is told once.
                org.slf4j.LoggerFactory.getLogger(Console.class).error("console input stopped: {}", e.toString());
            }
        });
        t.start();
    }

    /** Where typed bytes go (the UART's receiver). */
    interface Sink {
        void receive(byte[] data, int length);
    }
}
