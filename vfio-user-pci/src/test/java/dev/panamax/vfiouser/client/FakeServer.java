package dev.panamax.vfiouser.client;

import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * A small, scriptable vfio-user server for the client tests, on {@link UnixSocket} and {@link MessageChannel}:
 * it answers VERSION with the capabilities it is given and hands every other request to a {@link Handler}, which
 * may answer properly or misbehave (close, stall, send garbage or too many fds). One thread; it ends when the
 * client goes away or {@link #close} is called.
 */
final class FakeServer implements AutoCloseable {
    interface Handler {
        void handle(ReceivedMessage request, FakeServer server) throws Exception;
    }

    final Path path;
    final List<VfioUserHeader> requests = new CopyOnWriteArrayList<>();
    final List<Integer> requestFds = new CopyOnWriteArrayList<>();
    final List<byte[]> payloads = new CopyOnWriteArrayList<>();
    private final UnixSocket listener;
    private final Thread thread;
    private volatile MessageChannel channel;
    volatile Throwable failure;

    /** @param caps the VERSION reply's capabilities; null: the connection is closed instead of answering VERSION */
    FakeServer(Path path, VersionCodec.Capabilities caps, Handler handler) {
        this.path = path;
        this.listener = UnixSocket.listen(path, 1);
        this.thread = Thread.ofPlatform().name("fake vfio-user server").daemon().start(() -> serve(caps, handler));
    }

    static VersionCodec.Capabilities caps(int maxMsgFds, long maxDataXferSize) {
        return new VersionCodec.Capabilities(maxMsgFds, maxDataXferSize, 4096L, 16, null, null);
    }

    private void serve(VersionCodec.Capabilities caps, Handler handler) {
        try {
            try (listener) {
                channel = new MessageChannel(listener.accept(Duration.ofSeconds(10)), 16, 1 << 22);
            }
            channel.setPeerMaxFds(1);
            while (true) {
                try (ReceivedMessage m = channel.receive(null)) {
                    if (m.header().command() == VfioUserCommand.VERSION) {
                        if (caps == null) {
                            return;
                        }
                        ByteBuf out = Unpooled.buffer();
                        VersionCodec.encode(new VersionCodec.Version(0, 0, caps), out);
                        channel.sendReply(m.header(), out);
                        continue;
                    }
                    requests.add(m.header());
                    requestFds.add(m.fds().count());
                    payloads.add(m.payload());
                    handler.handle(m, this);
                }
            }
        } catch (dev.panamax.vfiouser.transport.VfioUserTransportException e) {
            // the client went away, or we closed
        } catch (Throwable t) {
            failure = t;
        } finally {
            MessageChannel c = channel;
            if (c != null) {
                c.close();
            }
            listener.close();
            try {
                Files.deleteIfExists(path);
            } catch (java.io.IOException e) {
                // a temp dir
            }
        }
    }

    MessageChannel channel() {
        return channel;
    }

    void reply(VfioUserHeader request, ByteBuf payload) {
        channel.sendReply(request, payload);
    }

    /** Sends {@code bytes} as they are, with {@code fds} (SCM_RIGHTS), past every check of the channel. */
    void sendRaw(ByteBuf bytes, int... fds) {
        try (Arena arena = Arena.ofConfined()) {
            byte[] b = new byte[bytes.readableBytes()];
            bytes.getBytes(bytes.readerIndex(), b);
            MemorySegment m = arena.allocate(b.length);
            MemorySegment.copy(b, 0, m, JAVA_BYTE, 0, b.length);
            long sent = channel.socket().sendRaw(m, fds);
            if (sent != b.length) {
                throw new AssertionError("sendmsg sent " + sent + " of " + b.length);
            }
        }
    }

    /** A whole reply's bytes: header (with {@code payload}'s size) and payload. */
    static ByteBuf replyBytes(int id, VfioUserCommand command, ByteBuf payload) {
        ByteBuf b = Unpooled.buffer();
        VfioUserHeader.reply(id, command, payload.readableBytes()).encode(b);
        b.writeBytes(payload);
        return b;
    }

    /** Ends the connection now (the client sees end of stream). */
    void hangUp() {
        channel.socket().shutdown();
    }

    /** Waits for the thread. */
    @Override
    public void close() throws InterruptedException {
        MessageChannel c = channel;
        if (c != null) {
            c.socket().shutdown(); // nothing once the thread closed it
        } else {
            listener.shutdown();
        }
        thread.join(10_000);
        if (thread.isAlive()) {
            throw new AssertionError("the fake server did not end");
        }
    }
}
