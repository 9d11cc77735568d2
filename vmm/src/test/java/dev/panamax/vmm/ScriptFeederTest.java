package dev.panamax.vmm;

import dev.panamax.devices.Serial16550;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The script's framing on the console and its feeding into a real UART model, drained as a guest's driver would. */
class ScriptFeederTest {
    /** UART registers (offsets from COM1): RBR, IER, IIR, LSR. */
    private static final int RBR = 0, IER = 1, IIR = 2, LSR = 5;

    @Test
    void frameIsBase64LinesOfAtMost76ThenTheEndLine() {
        for (int size : new int[]{0, 1, 56, 57, 58, 1000, 10_000}) {
            byte[] script = new byte[size];
            for (int i = 0; i < size; i++) {
                script[i] = (byte) (i * 31 + 7);
            }
            String framed = new String(ScriptFeeder.frame(script), StandardCharsets.US_ASCII);
            assertTrue(framed.endsWith("\n" + ScriptFeeder.END_LINE + "\n") || framed.equals(ScriptFeeder.END_LINE + "\n"), framed);
            String[] lines = framed.split("\n");
            StringBuilder b64 = new StringBuilder();
            for (int i = 0; i < lines.length - 1; i++) {
                assertTrue(lines[i].length() <= ScriptFeeder.LINE_CHARS && !lines[i].isEmpty(), "line " + i + ": " + lines[i]);
                assertTrue(lines[i].matches("[A-Za-z0-9+/=]+"), lines[i]);
                if (i < lines.length - 2) {
                    assertEquals(ScriptFeeder.LINE_CHARS, lines[i].length(), "only the last line is short");
                }
                b64.append(lines[i]);
            }
            assertEquals(ScriptFeeder.END_LINE, lines[lines.length - 1]);
            assertArrayEquals(script, Base64.getDecoder().decode(b64.toString()), "size " + size);
        }
    }

    /**
     * 20 KiB framed, five times the UART's backlog: the feeder waits while it is full and every byte reaches the
     * "guest" in order, none dropped.
     */
    @Test
    void feedWaitsWhileTheUartIsFullAndDropsNothing() throws Exception {
        Serial16550 uart = new Serial16550(level -> { }, b -> { });
        byte[] script = new byte[15_000];
        for (int i = 0; i < script.length; i++) {
            script[i] = (byte) ('a' + i % 26);
        }
        byte[] framed = ScriptFeeder.frame(script);
        assertTrue(framed.length > 4 * Serial16550.RX_LIMIT);
        AtomicInteger offers = new AtomicInteger();
        AtomicInteger refused = new AtomicInteger();
        ScriptFeeder.Receiver counting = (data, off, len) -> {
            int n = uart.offer(data, off, len);
            offers.incrementAndGet();
            assertTrue(len <= ScriptFeeder.CHUNK);
            if (n == 0) {
                refused.incrementAndGet();
            }
            return n;
        };
        AtomicInteger sent = new AtomicInteger(-1);
        Thread feeder = Thread.ofPlatform().start(() -> {
            try {
                sent.set(ScriptFeeder.feed(framed, counting, () -> false, System.nanoTime() + 60_000_000_000L));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        // The guest: starts reading only once the backlog is full, then reads slowly.
        while (refused.get() == 0) {
            Thread.sleep(1);
        }
        uart.write(IER, 1, 0x01);
        assertEquals(0x04, uart.read(IIR, 1) & 0x0F);
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        while (got.size() < framed.length) {
            if ((uart.read(LSR, 1) & 1) != 0) {
                got.write((int) uart.read(RBR, 1));
            } else {
                Thread.sleep(1);
            }
        }
        feeder.join(10_000);
        assertEquals(framed.length, sent.get());
        assertArrayEquals(framed, got.toByteArray());
        assertTrue(refused.get() > 0 && offers.get() > framed.length / ScriptFeeder.CHUNK, offers + " offers");
    }

    @Test
    void feedStopsWhenTheMachineEndsOrTheDeadlinePasses() throws Exception {
        Serial16550 uart = new Serial16550(level -> { }, b -> { });
        byte[] big = new byte[3 * Serial16550.RX_LIMIT];
        AtomicBoolean ended = new AtomicBoolean();
        List<Integer> sent = new ArrayList<>();
        Thread t = Thread.ofPlatform().start(() -> {
            try {
                sent.add(ScriptFeeder.feed(big, uart::offer, ended::get, System.nanoTime() + 60_000_000_000L));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        Thread.sleep(50);
        ended.set(true);
        t.join(5_000);
        assertEquals(List.of(Serial16550.RX_LIMIT), sent, "the full backlog, then nothing more once ended");
        long t0 = System.nanoTime();
        assertEquals(0, ScriptFeeder.feed(big, uart::offer, () -> false, System.nanoTime() + 30_000_000L));
        assertTrue(System.nanoTime() - t0 < 5_000_000_000L);
    }
}
