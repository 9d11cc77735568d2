package dev.panamax.vmm;

import dev.panamax.vmm.snapshot.SnapshotDirs;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/**
 * Sends a {@link ReadyScript} to the guest's serial console, after a snapshot at the guest's ready line when asked.
 *
 * <p>Protocol (the guest's half is the images module's /init, {@code ImageBuilder.initScript}): with
 * {@code panamax.script=serial} on its command line and no /panamax/script, init turns the console's echo off and prints
 * {@value #READY_LINE}; the host then sends the script base64-encoded (RFC 4648 section 4, the standard alphabet with
 * padding) in lines of at most {@value #LINE_CHARS} characters, each ended by LF, and the line {@value #END_LINE};
 * init decodes the lines to /panamax/script and runs it as a script built into the image.
 *
 * <p>The console watcher runs on a vCPU thread, which must not wait for its own pause: on the ready line it starts a
 * platform thread that takes the snapshot ({@link MachineControl#snapshot}: pause, capture, write, resume) and then
 * feeds. Feeding pushes the bytes into the UART's host-side backlog ({@link dev.panamax.devices.Serial16550#offer}) in
 * chunks, sleeping {@value #WAIT_MILLIS} ms while it is full, until all are in, the machine ends, or {@link #FEED_LIMIT}.
 */
final class ScriptFeeder {
    private static final Logger log = LoggerFactory.getLogger(ScriptFeeder.class);

    static final String READY_LINE = ReadyScript.READY_LINE;
    static final String END_LINE = ReadyScript.END_LINE;
    /** Base64 characters per line at most, as MIME's (RFC 2045 section 6.8). */
    static final int LINE_CHARS = 76;
    /** Bytes offered to the UART at once. */
    static final int CHUNK = 512;
    static final long WAIT_MILLIS = 5;
    /** The longest a feed may take, whatever the machine's own timeout. */
    static final Duration FEED_LIMIT = Duration.ofMinutes(10);

    /** Where bytes for the guest go: {@code Serial16550.offer}. */
    interface Receiver {
        /** @return how many of {@code data[offset, offset + length)} were taken (0 when full) */
        int offer(byte[] data, int offset, int length);
    }

    private final ReadyScript script;
    private final Receiver uart;
    private final Consumer<Path> snapshot;
    private final BooleanSupplier ended;
    private final boolean restored;
    private final AtomicBoolean started = new AtomicBoolean();

    /**
     * @param uart     the guest's console UART
     * @param snapshot writes a snapshot of the running machine to a directory ({@link MachineControl#snapshot})
     * @param ended    whether the machine has its verdict (feeding stops then)
     * @param restored whether the machine was restored from a snapshot (feed at once) or boots (wait for the ready line)
     */
    ScriptFeeder(ReadyScript script, Receiver uart, Consumer<Path> snapshot, BooleanSupplier ended, boolean restored) {
        this.script = script;
        this.uart = uart;
        this.snapshot = snapshot;
        this.ended = ended;
        this.restored = restored;
    }

    /** After the vCPU threads started: a restored guest is past its ready line, so the script goes at once. */
    void vcpusStarted() {
        if (restored) {
            start(false);
        }
    }

    /** Each console line (on a vCPU thread: returns at once). */
    void consoleLine(String line) {
        if (!restored && line.contains(READY_LINE)) {
            start(script.snapshotAtReady() != null);
        }
    }

    private void start(boolean snapshotFirst) {
        if (!started.compareAndSet(false, true)) {
            return;
        }
        Thread.ofPlatform().daemon().name("script-feeder").start(() -> {
            try {
                if (snapshotFirst) {
                    saveSnapshot(script.snapshotAtReady());
                }
                byte[] framed = frame(script.scriptInput());
                int sent = feed(framed, uart, ended, System.nanoTime() + FEED_LIMIT.toNanos());
                if (sent < framed.length && !ended.getAsBoolean()) {
                    log.error("the script did not reach the guest within {} s ({} of {} bytes sent)",
                            FEED_LIMIT.toSeconds(), sent, framed.length);
                } else {
                    log.debug("sent the script to the guest: {} bytes, {} framed", script.scriptInput().length, framed.length);
                }
            } catch (Throwable t) {
                log.error("sending the script to the guest failed: {}", t.toString());
            }
        });
    }

    /** The snapshot at the ready line; a failure is one line, and the script runs anyway. */
    private void saveSnapshot(Path dir) {
        try {
            if (!SnapshotDirs.writeAtomically(dir, snapshot)) {
                log.info("snapshot {} was made meanwhile by another run: kept", dir);
            }
        } catch (RuntimeException e) {
            log.warn("no snapshot at the guest's ready line: {}", e.getMessage());
        }
    }

    /**
     * The bytes sent for {@code script}: its base64 encoding in lines of at most {@value #LINE_CHARS} characters, each
     * ended by LF, then {@value #END_LINE} and LF (an empty script is the end line alone).
     */
    static byte[] frame(byte[] script) {
        String b64 = Base64.getEncoder().encodeToString(script);
        StringBuilder sb = new StringBuilder(b64.length() + b64.length() / LINE_CHARS + END_LINE.length() + 2);
        for (int i = 0; i < b64.length(); i += LINE_CHARS) {
            sb.append(b64, i, Math.min(b64.length(), i + LINE_CHARS)).append('\n');
        }
        sb.append(END_LINE).append('\n');
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * Offers {@code bytes} to {@code uart} in chunks of {@value #CHUNK}, sleeping {@value #WAIT_MILLIS} ms whenever it
     * takes nothing, until all are taken, {@code ended} says so, or {@code deadlineNanos} ({@link System#nanoTime}) passes.
     *
     * @return the number of bytes taken
     */
    static int feed(byte[] bytes, Receiver uart, BooleanSupplier ended, long deadlineNanos) throws InterruptedException {
        int pos = 0;
        while (pos < bytes.length && !ended.getAsBoolean() && System.nanoTime() - deadlineNanos < 0) {
            int n = uart.offer(bytes, pos, Math.min(CHUNK, bytes.length - pos));
            pos += n;
            if (n == 0) {
                Thread.sleep(WAIT_MILLIS);
            }
        }
        return pos;
    }
}
