package dev.panamax.vmm.migration;

import java.io.Closeable;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;

/**
 * The live-migration stream (issue 17), one UNIX stream socket from the source ({@code panamax ctl migrate S}) to the
 * destination ({@code panamax run --incoming unix:S}, which listens). All integers big-endian.
 *
 * <h2>Header</h2>
 * Source to destination, once: the 8 bytes {@code "PMXMIGR\n"} ({@link #MAGIC}), then the version, u32
 * ({@value #VERSION}). A destination refuses another magic or a version above its own.
 *
 * <h2>Frames</h2>
 * Then frames, each {@code type} (u8), {@code length} (u32, unsigned: the payload's bytes), payload. Every length is
 * checked against the type's limit ({@link #maxLength}) before a byte of the payload is read.
 * <table>
 * <caption>Frame types</caption>
 * <tr><th>type</th><th>direction</th><th>payload</th><th>max bytes</th></tr>
 * <tr><td>1 MACHINE</td><td>to destination, first</td><td>JSON {@code {"machine": {cpus, memory_bytes, cmdline,
 *     ram_backing}, "devices": [{name, kind, pci_address}]}}: the manifest's {@code machine} and {@code devices} of a
 *     snapshot ({@code SnapshotManifest})</td><td>1 MiB</td></tr>
 * <tr><td>2 PAGES</td><td>to destination</td><td>1 to {@value #MAX_PAGES_PER_FRAME} pages, each a u64 offset into guest
 *     RAM (host-mapping order, "ram-low" then "ram-high", as a snapshot's RAM file; a multiple of 4096 below the RAM
 *     size) and the page's 4096 bytes</td><td>{@value #MAX_PAGES_PER_FRAME} &times; 4104</td></tr>
 * <tr><td>3 ROUND_END</td><td>to destination</td><td>round number (u32; 0 is the first, every non-zero page), pages
 *     sent in it (u64)</td><td>12</td></tr>
 * <tr><td>4 STATE</td><td>to destination, after the last round</td><td>JSON {@code MachineState} (as a snapshot's
 *     {@code state.json}): vCPUs, VM, device models</td><td>64 MiB</td></tr>
 * <tr><td>5 END</td><td>to destination, last</td><td>none</td><td>0</td></tr>
 * <tr><td>6 RUNNING</td><td>to source</td><td>none: the destination restored the machine and runs its vCPUs</td><td>0</td></tr>
 * <tr><td>7 ERROR</td><td>to source, instead of RUNNING</td><td>UTF-8, one line: why the destination gave up</td><td>4096</td></tr>
 * </table>
 * The source sends MACHINE, rounds of PAGES each closed by ROUND_END (a later round carries the pages the vCPUs wrote
 * since the previous one, KVM's dirty log), pauses the VM, sends the last round, STATE and END, and waits for
 * RUNNING or ERROR. A page sent again replaces the earlier copy.
 *
 * <p>Each read and write is bounded by the channel's I/O timeout (UNIX socket channels have no {@code SO_TIMEOUT}:
 * the channel is non-blocking and waits in a {@link Selector}). Not thread-safe.
 */
public final class FrameChannel implements Closeable {
    /** The stream's first 8 bytes. */
    static final byte[] MAGIC = "PMXMIGR\n".getBytes(StandardCharsets.US_ASCII);
    /** The stream format version this Panamax writes and the highest it reads. */
    public static final int VERSION = 1;
    public static final int MACHINE = 1, PAGES = 2, ROUND_END = 3, STATE = 4, END = 5, RUNNING = 6, ERROR = 7;
    /** Pages in one PAGES frame, at most. */
    public static final int MAX_PAGES_PER_FRAME = 256;
    /** One page's record in a PAGES frame: offset and data, bytes. */
    public static final int PAGE_RECORD = 8 + 4096;
    /** A type byte and a length, bytes. */
    static final int FRAME_HEADER = 5;

    /** A frame read: its type and payload (valid until the next read). */
    public record Frame(int type, ByteBuffer payload) {
    }

    private final ReadableByteChannel in;
    private final WritableByteChannel out;
    private final SocketChannel socket;
    private final Selector selector;
    private final long timeoutNanos;
    private final ByteBuffer head = ByteBuffer.allocate(FRAME_HEADER);
    private ByteBuffer payload = ByteBuffer.allocate(64 * 1024);

    /**
     * Over a connected UNIX socket, made non-blocking here.
     *
     * @param timeout how long one read or write may wait for the peer
     */
    public FrameChannel(SocketChannel socket, Duration timeout) throws IOException {
        socket.configureBlocking(false);
        this.in = socket;
        this.out = socket;
        this.socket = socket;
        this.selector = Selector.open();
        this.timeoutNanos = timeout.toNanos();
    }

    /** Over blocking channels, without timeouts (tests). */
    FrameChannel(ReadableByteChannel in, WritableByteChannel out) {
        this.in = in;
        this.out = out;
        this.socket = null;
        this.selector = null;
        this.timeoutNanos = 0;
    }

    /** @return the largest payload a frame of {@code type} may have, bytes, or -1 for an unknown type */
    public static long maxLength(int type) {
        return switch (type) {
            case MACHINE -> 1 << 20;
            case PAGES -> (long) MAX_PAGES_PER_FRAME * PAGE_RECORD;
            case ROUND_END -> 12;
            case STATE -> 64L << 20;
            case END, RUNNING -> 0;
            case ERROR -> 4096;
            default -> -1;
        };
    }

    /** @return the frame type's name, for messages */
    public static String name(int type) {
        return switch (type) {
            case MACHINE -> "MACHINE";
            case PAGES -> "PAGES";
            case ROUND_END -> "ROUND_END";
            case STATE -> "STATE";
            case END -> "END";
            case RUNNING -> "RUNNING";
            case ERROR -> "ERROR";
            default -> "type " + type;
        };
    }

    /** Writes the stream header (source). */
    public void writeHeader() {
        ByteBuffer b = ByteBuffer.allocate(MAGIC.length + 4).put(MAGIC).putInt(VERSION).flip();
        write("the stream header", b);
    }

    /**
     * Reads and checks the stream header (destination).
     *
     * @throws MigrationException if the peer is no Panamax migration source, or of a newer format version
     */
    public void readHeader() {
        ByteBuffer b = ByteBuffer.allocate(MAGIC.length + 4);
        read("the stream header", b);
        byte[] magic = Arrays.copyOf(b.array(), MAGIC.length);
        if (!Arrays.equals(magic, MAGIC)) {
            throw new MigrationException("the peer is not a Panamax migration source (the stream starts with "
                    + printable(magic) + ")");
        }
        long version = Integer.toUnsignedLong(b.getInt(MAGIC.length));
        if (version < 1 || version > VERSION) {
            throw new MigrationException("migration stream version " + version + " is not one this Panamax reads (1 to "
                    + VERSION + ")");
        }
    }

    /**
     * Writes one frame, its payload the remaining bytes of {@code parts}.
     *
     * @throws IllegalArgumentException if the payload is longer than the type allows
     * @throws MigrationException       if the peer is gone or takes nothing within the timeout
     */
    public void write(int type, ByteBuffer... parts) {
        long length = 0;
        for (ByteBuffer p : parts) {
            length += p.remaining();
        }
        long max = maxLength(type);
        if (max < 0 || length > max) {
            throw new IllegalArgumentException(name(type) + " frame of " + length + " bytes (at most " + max + ")");
        }
        head.clear();
        head.put((byte) type).putInt((int) length).flip();
        write(name(type) + " frame", head);
        for (ByteBuffer p : parts) {
            write(name(type) + " frame", p);
        }
    }

    /**
     * Reads the next frame.
     *
     * @param expected the types that may come now
     * @return the frame; its payload is valid until the next read
     * @throws MigrationException on end of stream, a timeout, an unknown or unexpected type, or a length above the
     *                            type's limit (checked before the payload is read); an ERROR frame from the peer when
     *                            it is not expected becomes this exception with the peer's message
     */
    public Frame read(int... expected) {
        head.clear();
        read("a frame", head);
        int type = head.get(0) & 0xFF;
        long length = Integer.toUnsignedLong(head.getInt(1));
        long max = maxLength(type);
        if (max < 0) {
            throw new MigrationException("migration stream: unknown frame type " + type + " (garbage, or a newer Panamax)");
        }
        if (length > max) {
            throw new MigrationException("migration stream: " + name(type) + " frame of " + length
                    + " bytes, more than the " + max + " it may have");
        }
        if (payload.capacity() < length) {
            payload = ByteBuffer.allocate((int) Math.max(length, Math.min(2L * payload.capacity(), maxLength(PAGES))));
        }
        payload.clear().limit((int) length);
        read(name(type) + " frame", payload);
        payload.flip();
        for (int e : expected) {
            if (e == type) {
                return new Frame(type, payload);
            }
        }
        if (type == ERROR) {
            throw new MigrationException("the peer gave up: " + StandardCharsets.UTF_8.decode(payload));
        }
        String names = String.join(" or ", Arrays.stream(expected).mapToObj(FrameChannel::name).toList());
        throw new MigrationException("migration stream: " + name(type) + " frame where " + names + " was due");
    }

    private void read(String what, ByteBuffer b) {
        try {
            long deadline = System.nanoTime() + timeoutNanos;
            while (b.hasRemaining()) {
                int n = in.read(b);
                if (n < 0) {
                    throw new EOFException();
                }
                if (n == 0) {
                    await(SelectionKey.OP_READ, deadline, "reading " + what);
                }
            }
        } catch (EOFException e) {
            throw new MigrationException("migration stream: the peer closed it while sending " + what
                    + " (a short stream, or the peer died)", e);
        } catch (IOException e) {
            throw new MigrationException("migration stream: reading " + what + ": " + e.getMessage(), e);
        }
    }

    private void write(String what, ByteBuffer b) {
        try {
            long deadline = System.nanoTime() + timeoutNanos;
            while (b.hasRemaining()) {
                if (out.write(b) == 0) {
                    await(SelectionKey.OP_WRITE, deadline, "writing " + what);
                }
            }
        } catch (IOException e) {
            throw new MigrationException("migration stream: writing " + what + ": " + e.getMessage()
                    + " (the peer is gone)", e);
        }
    }

    private void await(int op, long deadline, String what) throws IOException {
        if (socket == null) {
            return; // blocking channels
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw new MigrationException("migration stream: the peer sent or took nothing for "
                    + Duration.ofNanos(timeoutNanos).toSeconds() + " s while " + what);
        }
        SelectionKey key = socket.register(selector, op);
        selector.select(Math.max(1, left / 1_000_000));
        key.interestOps(0);
        selector.selectedKeys().clear();
    }

    private static String printable(byte[] b) {
        StringBuilder s = new StringBuilder("\"");
        for (byte x : b) {
            s.append(x >= 0x20 && x < 0x7f ? String.valueOf((char) x) : String.format("\\x%02x", x & 0xFF));
        }
        return s.append('"').toString();
    }

    @Override
    public void close() throws IOException {
        try {
            if (selector != null) {
                selector.close();
            }
        } finally {
            in.close();
            out.close();
        }
    }
}
