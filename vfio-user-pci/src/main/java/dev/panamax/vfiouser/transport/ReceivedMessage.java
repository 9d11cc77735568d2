package dev.panamax.vfiouser.transport;

import dev.panamax.vfiouser.protocol.VfioUserHeader;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * One whole vfio-user message as received: its checked header, its payload (the bytes after the
 * header, {@code header.payloadSize()} of them) and the fds that came with it. Close it to close
 * the fds nobody took.
 */
public record ReceivedMessage(VfioUserHeader header, byte[] payload, ReceivedFds fds) implements AutoCloseable {
    /** @return the payload as a little-endian-readable netty buffer for the codecs (a fresh view each call) */
    public ByteBuf payloadBuffer() {
        return Unpooled.wrappedBuffer(payload);
    }

    @Override
    public void close() {
        fds.close();
    }
}
