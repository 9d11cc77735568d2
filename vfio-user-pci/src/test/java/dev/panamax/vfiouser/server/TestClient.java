package dev.panamax.vfiouser.server;

import dev.panamax.vfiouser.protocol.DmaReadCodec;
import dev.panamax.vfiouser.protocol.DmaWriteCodec;
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
import java.time.Duration;
import java.util.function.Consumer;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A vfio-user client for the tests, written against the codecs and {@link MessageChannel}: it sends
 * a request and, while waiting for the reply, answers the server's DMA_READ / DMA_WRITE from
 * {@link #memory}, the client memory at DMA address {@link #memoryBase} given without an fd
 * (or from another segment, e.g. a memfd mapping, given to the constructor). Public for the
 * device tests of other packages.
 */
public final class TestClient implements AutoCloseable {
    public static final Duration T = Duration.ofSeconds(5);
    public final MessageChannel channel;
    public final long memoryBase;
    /** The client memory served by DMA messages when no segment was given, else empty. */
    public final byte[] memory;
    private final MemorySegment segment;
    public int dmaMessages;
    private int nextId = 100;

    public TestClient(UnixSocket socket, long memoryBase, int memoryBytes) {
        this.channel = new MessageChannel(socket, 16, 2 << 20);
        this.channel.setPeerMaxFds(16);
        this.memoryBase = memoryBase;
        this.memory = new byte[memoryBytes];
        this.segment = MemorySegment.ofArray(memory);
    }

    /** A client serving DMA_READ / DMA_WRITE at {@code memoryBase} from {@code memory} (e.g. a memfd's mapping). */
    public TestClient(UnixSocket socket, long memoryBase, MemorySegment memory) {
        this.channel = new MessageChannel(socket, 16, 2 << 20);
        this.channel.setPeerMaxFds(16);
        this.memoryBase = memoryBase;
        this.memory = new byte[0];
        this.segment = memory;
    }

    public static ByteBuf payload(Consumer<ByteBuf> encoder) {
        ByteBuf b = Unpooled.buffer();
        encoder.accept(b);
        return b;
    }

    /** Sends a request and returns its reply (close it), serving DMA messages meanwhile. */
    public ReceivedMessage call(VfioUserCommand command, ByteBuf payload, int... fds) {
        int id = nextId++;
        channel.sendCommand(id, command, false, payload, fds);
        return awaitReply(id, command);
    }

    public ReceivedMessage awaitReply(int id, VfioUserCommand command) {
        while (true) {
            ReceivedMessage m = channel.receive(T);
            VfioUserHeader h = m.header();
            if (h.isReply()) {
                assertEquals(id, h.messageId(), "reply ID");
                assertEquals(command, h.command(), "reply command");
                return m;
            }
            try (m) {
                serveDma(m);
            }
        }
    }

    /** Calls and checks the reply is not an error; returns its payload. */
    public ByteBuf ok(VfioUserCommand command, ByteBuf payload, int... fds) {
        try (ReceivedMessage m = call(command, payload, fds)) {
            assertFalse(m.header().isError(), command + " failed with errno " + m.header().error());
            assertEquals(0, m.fds().count(), command + " reply fds");
            return m.payloadBuffer();
        }
    }

    /** Calls and checks the reply is an error; returns its errno. */
    public int error(VfioUserCommand command, ByteBuf payload, int... fds) {
        try (ReceivedMessage m = call(command, payload, fds)) {
            assertTrue(m.header().isError(), command + " should have failed");
            return m.header().error();
        }
    }

    private void serveDma(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        dmaMessages++;
        ByteBuf out = Unpooled.buffer();
        switch (h.command()) {
            case DMA_READ -> {
                DmaReadCodec.Request r = DmaReadCodec.decodeRequest(m.payloadBuffer(), 1 << 20);
                byte[] data = new byte[(int) r.count()];
                MemorySegment.copy(segment, JAVA_BYTE, r.address() - memoryBase, data, 0, data.length);
                DmaReadCodec.encode(new DmaReadCodec.Reply(r.address(), data), out);
            }
            case DMA_WRITE -> {
                DmaWriteCodec.Request r = DmaWriteCodec.decodeRequest(m.payloadBuffer(), 1 << 20);
                MemorySegment.copy(r.data(), 0, segment, JAVA_BYTE, r.address() - memoryBase, r.data().length);
                DmaWriteCodec.encode(new DmaWriteCodec.Reply(r.address(), r.data().length), out);
            }
            default -> throw new AssertionError("unexpected command from the server: " + h.command());
        }
        channel.sendReply(h, out);
    }

    public VersionCodec.Version version() {
        ByteBuf reply = ok(VfioUserCommand.VERSION, payload(b -> VersionCodec.encode(new VersionCodec.Version(0, 0,
                new VersionCodec.Capabilities(8, 1L << 16, 4096L, 64, null, true)), b)));
        return VersionCodec.decode(reply);
    }

    /** Sends raw bytes, bypassing the channel's checks (a misbehaving client). */
    public void sendRaw(ByteBuf message) {
        try (Arena arena = Arena.ofConfined()) {
            byte[] b = new byte[message.readableBytes()];
            message.getBytes(message.readerIndex(), b);
            MemorySegment m = arena.allocate(Math.max(1, b.length));
            MemorySegment.copy(b, 0, m, JAVA_BYTE, 0, b.length);
            assertEquals(b.length, channel.socket().sendRaw(m.asSlice(0, b.length), new int[0]), "sendmsg");
        }
    }

    @Override
    public void close() {
        channel.close();
    }
}
