package dev.panamax.vmm.migration;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The migration stream's framing ({@link FrameChannel}): round trips, and every bad stream one clear exception. */
class FrameChannelTest {
    private final ByteArrayOutputStream sent = new ByteArrayOutputStream();
    private final FrameChannel writer = new FrameChannel(Channels.newChannel(new ByteArrayInputStream(new byte[0])),
            Channels.newChannel(sent));

    private static FrameChannel reading(byte[] bytes) {
        return new FrameChannel(Channels.newChannel(new ByteArrayInputStream(bytes)), Channels.newChannel(new ByteArrayOutputStream()));
    }

    private static byte[] header() {
        return ByteBuffer.allocate(12).put(FrameChannel.MAGIC).putInt(FrameChannel.VERSION).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return b.toByteArray();
    }

    private static byte[] frameHead(int type, long length) {
        return ByteBuffer.allocate(5).put((byte) type).putInt((int) length).array();
    }

    private static byte[] payload(FrameChannel.Frame f) {
        byte[] b = new byte[f.payload().remaining()];
        f.payload().get(b);
        return b;
    }

    @Test
    void headerAndFramesRoundTrip() {
        writer.writeHeader();
        writer.write(FrameChannel.MACHINE, ByteBuffer.wrap("{\"a\":1}".getBytes(StandardCharsets.UTF_8)));
        writer.write(FrameChannel.ROUND_END, ByteBuffer.allocate(4).putInt(7).flip(), ByteBuffer.allocate(8).putLong(99).flip());
        writer.write(FrameChannel.END);
        byte[] bytes = sent.toByteArray();
        assertEquals(12 + 5 + 7 + 5 + 12 + 5, bytes.length);
        FrameChannel r = reading(bytes);
        r.readHeader();
        FrameChannel.Frame m = r.read(FrameChannel.MACHINE);
        assertEquals("{\"a\":1}", new String(payload(m), StandardCharsets.UTF_8));
        FrameChannel.Frame round = r.read(FrameChannel.PAGES, FrameChannel.ROUND_END);
        assertEquals(FrameChannel.ROUND_END, round.type());
        assertEquals(7, round.payload().getInt());
        assertEquals(99, round.payload().getLong());
        assertEquals(0, r.read(FrameChannel.END).payload().remaining());
    }

    @Test
    void aShortStreamSaysThePeerClosedIt() {
        FrameChannel r = reading(concat(header(), frameHead(FrameChannel.MACHINE, 100), new byte[10]));
        r.readHeader();
        MigrationException e = assertThrows(MigrationException.class, () -> r.read(FrameChannel.MACHINE));
        assertEquals("migration stream: the peer closed it while sending MACHINE frame (a short stream, or the peer died)",
                e.getMessage());
        MigrationException h = assertThrows(MigrationException.class, () -> reading(new byte[5]).readHeader());
        assertTrue(h.getMessage().contains("while sending the stream header"), h.getMessage());
    }

    @Test
    void anOversizedLengthIsRefusedBeforeItsPayloadIsRead() {
        // 0xFFFFFFFF read unsigned: 4294967295, never negative, never allocated.
        FrameChannel r = reading(concat(header(), frameHead(FrameChannel.ROUND_END, 0xFFFF_FFFFL)));
        r.readHeader();
        MigrationException e = assertThrows(MigrationException.class, () -> r.read(FrameChannel.ROUND_END));
        assertEquals("migration stream: ROUND_END frame of 4294967295 bytes, more than the 12 it may have", e.getMessage());
        FrameChannel s = reading(concat(header(), frameHead(FrameChannel.STATE, (64L << 20) + 1)));
        s.readHeader();
        assertTrue(assertThrows(MigrationException.class, () -> s.read(FrameChannel.STATE)).getMessage()
                .contains("STATE frame of 67108865 bytes"));
    }

    @Test
    void garbageIsNamed() {
        MigrationException magic = assertThrows(MigrationException.class,
                () -> reading("GET / HTTP/1.1\r\n".getBytes(StandardCharsets.US_ASCII)).readHeader());
        assertEquals("the peer is not a Panamax migration source (the stream starts with \"GET / HT\")", magic.getMessage());
        byte[] future = ByteBuffer.allocate(12).put(FrameChannel.MAGIC).putInt(2).array();
        assertEquals("migration stream version 2 is not one this Panamax reads (1 to 1)",
                assertThrows(MigrationException.class, () -> reading(future).readHeader()).getMessage());
        FrameChannel unknown = reading(concat(header(), frameHead(99, 0)));
        unknown.readHeader();
        assertEquals("migration stream: unknown frame type 99 (garbage, or a newer Panamax)",
                assertThrows(MigrationException.class, () -> unknown.read(FrameChannel.MACHINE)).getMessage());
        FrameChannel early = reading(concat(header(), frameHead(FrameChannel.END, 0)));
        early.readHeader();
        assertEquals("migration stream: END frame where PAGES or ROUND_END or STATE was due",
                assertThrows(MigrationException.class,
                        () -> early.read(FrameChannel.PAGES, FrameChannel.ROUND_END, FrameChannel.STATE)).getMessage());
    }

    @Test
    void thePeersErrorFrameBecomesItsMessage() {
        writer.write(FrameChannel.ERROR, ByteBuffer.wrap("--incoming: the snapshot's devices are none".getBytes(StandardCharsets.UTF_8)));
        FrameChannel r = reading(sent.toByteArray());
        assertEquals("the peer gave up: --incoming: the snapshot's devices are none",
                assertThrows(MigrationException.class, () -> r.read(FrameChannel.RUNNING)).getMessage());
    }

    @Test
    void aPayloadAboveItsTypesLimitIsNotWritten() {
        assertThrows(IllegalArgumentException.class, () -> writer.write(FrameChannel.END, ByteBuffer.allocate(1)));
        assertThrows(IllegalArgumentException.class,
                () -> writer.write(FrameChannel.PAGES, ByteBuffer.allocate(FrameChannel.MAX_PAGES_PER_FRAME * FrameChannel.PAGE_RECORD + 1)));
        assertThrows(IllegalArgumentException.class, () -> writer.write(42));
        assertEquals(0, sent.size());
    }

    /** Any payload within its type's limit comes back byte for byte, several frames in a row. */
    @Property(tries = 200)
    void framesOfAnyPayloadRoundTrip(@ForAll @Size(max = 5) List<@Size(max = 5000) byte[]> payloads,
                                     @ForAll @IntRange(min = 0, max = 1) int kind) {
        int type = kind == 0 ? FrameChannel.MACHINE : FrameChannel.PAGES;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        FrameChannel w = new FrameChannel(Channels.newChannel(new ByteArrayInputStream(new byte[0])), Channels.newChannel(out));
        for (byte[] p : payloads) {
            w.write(type, ByteBuffer.wrap(p));
        }
        FrameChannel r = reading(out.toByteArray());
        for (byte[] p : payloads) {
            assertArrayEquals(p, payload(r.read(type)));
        }
        assertThrows(MigrationException.class, () -> r.read(type));
    }

    /** Whatever follows a good header, reading ends in a frame or one MigrationException: nothing else escapes. */
    @Property(tries = 500)
    void garbageAfterTheHeaderGivesFramesOrAMigrationException(@ForAll @Size(max = 300) byte[] garbage) {
        FrameChannel r = reading(concat(header(), garbage));
        r.readHeader();
        try {
            for (int i = 0; i < 100; i++) {
                FrameChannel.Frame f = r.read(FrameChannel.MACHINE, FrameChannel.PAGES, FrameChannel.ROUND_END,
                        FrameChannel.STATE, FrameChannel.END, FrameChannel.RUNNING);
                assertTrue(f.payload().remaining() <= FrameChannel.maxLength(f.type()));
            }
        } catch (MigrationException e) {
            assertTrue(e.getMessage() != null && !e.getMessage().contains("\n"), e.getMessage());
        }
        assertTrue(Arrays.equals(Arrays.copyOf(header(), 8), FrameChannel.MAGIC));
    }
}
