package dev.panamax.vmm.api;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.util.Arrays;

/**
 * Lines of bytes over a connected UNIX stream socket, each read and write bounded by a deadline (UNIX domain socket
 * channels have no {@code SO_TIMEOUT}, so the channel is non-blocking and waits in a {@link Selector}). A line ends
 * at {@code '\n'} (a {@code "\r\n"} ending loses its {@code '\r'} too); bytes after it stay for the next read, so a
 * peer may send several lines at once. Used by both ends of the control socket ({@link ApiServer},
 * {@link ApiClient}). Not thread-safe: one thread per connection.
 */
final class LineChannel implements Closeable {
    /** A line longer than the limit (its {@code '\n'} not counted). */
    static final class LineTooLongException extends IOException {
        LineTooLongException(int maxBytes) {
            super("request line longer than " + maxBytes + " bytes");
        }
    }

    /** The deadline passed before a whole line came, or before the line could be written. */
    static final class DeadlineException extends IOException {
        DeadlineException(String what) {
            super(what);
        }
    }

    private final SocketChannel channel;
    private final Selector selector;
    private final int maxLineBytes;
    /** Bytes received and not yet returned, in [0, position); room for one line of the limit plus its '\n'. */
    private final ByteBuffer pending;
    /** How many bytes at the start of {@link #pending} are known to hold no '\n'. */
    private int scanned;
    private boolean eof;

    /** @param channel connected; made non-blocking here. @param maxLineBytes the longest line {@link #readLine} returns */
    LineChannel(SocketChannel channel, int maxLineBytes) throws IOException {
        this.channel = channel;
        this.maxLineBytes = maxLineBytes;
        this.pending = ByteBuffer.allocate(maxLineBytes + 1);
        channel.configureBlocking(false);
        this.selector = Selector.open();
    }

    SocketChannel channel() {
        return channel;
    }

    /**
     * @param deadlineNanos a {@link System#nanoTime()} by which the whole line must have come
     * @return the next line without its ending; at end of stream the bytes of an unterminated last line, if any, then
     * {@code null}
     * @throws LineTooLongException after {@code maxLineBytes + 1} bytes without a {@code '\n'}
     * @throws DeadlineException    when the deadline passes first
     */
    byte[] readLine(long deadlineNanos) throws IOException {
        while (true) {
            byte[] line = takeLine();
            if (line != null) {
                return line;
            }
            if (eof) {
                if (pending.position() == 0) {
                    return null;
                }
                byte[] last = Arrays.copyOf(pending.array(), pending.position());
                pending.clear();
                scanned = 0;
                return last;
            }
            if (!pending.hasRemaining()) {
                throw new LineTooLongException(maxLineBytes);
            }
            int n = channel.read(pending);
            if (n < 0) {
                eof = true;
            } else if (n == 0) {
                await(SelectionKey.OP_READ, deadlineNanos, "no complete request line in time");
            }
        }
    }

    /** The first complete line in {@link #pending}, removed from it, or {@code null}. */
    private byte[] takeLine() {
        byte[] buf = pending.array();
        int end = pending.position();
        for (int i = scanned; i < end; i++) {
            if (buf[i] == '\n') {
                int len = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
                byte[] line = Arrays.copyOf(buf, len);
                System.arraycopy(buf, i + 1, buf, 0, end - i - 1);
                pending.position(end - i - 1);
                scanned = 0;
                return line;
            }
        }
        scanned = end;
        return null;
    }

    /** Writes {@code line} and a {@code '\n'}, all of it by {@code deadlineNanos} or {@link DeadlineException}. */
    void writeLine(byte[] line, long deadlineNanos) throws IOException {
        ByteBuffer out = ByteBuffer.allocate(line.length + 1).put(line).put((byte) '\n').flip();
        while (out.hasRemaining()) {
            if (channel.write(out) == 0) {
                await(SelectionKey.OP_WRITE, deadlineNanos, "the peer did not read the reply in time");
            }
        }
    }

    private void await(int op, long deadlineNanos, String timeoutMessage) throws IOException {
        long left = deadlineNanos - System.nanoTime();
        if (left <= 0) {
            throw new DeadlineException(timeoutMessage);
        }
        try {
            SelectionKey key = channel.register(selector, op);
            selector.select(Math.max(1, left / 1_000_000));
            key.interestOps(0);
            selector.selectedKeys().clear();
        } catch (java.nio.channels.ClosedSelectorException | java.nio.channels.CancelledKeyException e) {
            throw new java.nio.channels.ClosedChannelException(); // closed by another thread (the server's close)
        }
        if (!channel.isOpen()) {
            throw new java.nio.channels.ClosedChannelException();
        }
    }

    @Override
    public void close() throws IOException {
        // The channel first, then the selector: closing the selector wakes a thread waiting in it, which then
        // finds the channel closed. Safe to call from another thread than the reader's.
        try {
            channel.close();
        } finally {
            selector.close();
        }
    }
}
