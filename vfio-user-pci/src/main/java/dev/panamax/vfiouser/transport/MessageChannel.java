package dev.panamax.vfiouser.transport;

import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * Whole vfio-user messages over a {@link UnixSocket}: {@link #send} writes header + payload with
 * the fds in one SCM_RIGHTS control message; {@link #receive} reads the 16-byte header, then exactly
 * the payload. Fds are taken only from the message's first {@code recvmsg} (a sender's {@code sendmsg} carries them
 * on the header's first byte): fds on payload bytes, or more than {@code maxReceiveFds}, are closed as they come
 * (so that a peer cannot pile them up across a long payload) and make the message a protocol error, as does
 * MSG_CTRUNC (fds cut off by the kernel).
 *
 * <p>A received message that breaks the protocol is read to its end (so the stream stays in step),
 * its fds are closed, and a {@link VfioUserProtocolException} names the message ID and command
 * for the error reply. Its limits: no more than {@code maxReceiveFds} fds (the {@code max_msg_fds}
 * this side announced in VERSION), no fds at all for commands that carry none
 * ({@link VfioUserCommand#maxFds}), no message over {@code maxMessageSize} bytes. A message size
 * that cannot be trusted (below 16 or above the limit) leaves the stream out of step: the channel
 * is then broken and every later receive throws.
 *
 * <p>One thread may send while another receives; sends are serialized, and so are receives.
 */
public final class MessageChannel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MessageChannel.class);
    private final UnixSocket socket;
    private final int maxReceiveFds;
    private final long maxMessageSize;
    private final Object sendLock = new Object();
    private final Object receiveLock = new Object();
    private volatile int peerMaxFds = VersionCodec.DEFAULT_MAX_MSG_FDS;
    private volatile String broken;
    /** Guarded by receiveLock: some bytes of the message being received were read. */
    private boolean partial;
    /** Guarded by receiveLock: fds of the message being received that came after its first recvmsg (closed at once). */
    private int lateFds;
    /** Guarded by receiveLock: fds of the message's first recvmsg beyond {@code maxReceiveFds} (closed at once). */
    private int tooMany;

    /**
     * @param socket         a connected socket, owned by the channel from now on
     * @param maxReceiveFds  most fds accepted in one message (this side's {@code max_msg_fds}), 0..253
     * @param maxMessageSize most bytes accepted in one message, header included
     */
    public MessageChannel(UnixSocket socket, int maxReceiveFds, long maxMessageSize) {
        if (maxReceiveFds < 0 || maxReceiveFds > SocketLibc.SCM_MAX_FD) {
            throw new IllegalArgumentException("max_msg_fds " + maxReceiveFds + " is not 0.." + SocketLibc.SCM_MAX_FD);
        }
        if (maxMessageSize < VfioUserHeader.SIZE || maxMessageSize > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("maximum message size " + maxMessageSize + " is not 16.." + Integer.MAX_VALUE);
        }
        this.socket = socket;
        this.maxReceiveFds = maxReceiveFds;
        this.maxMessageSize = maxMessageSize;
    }

    /** Sets the most fds the peer accepts per message, its {@code max_msg_fds} from VERSION (default 1). */
    public void setPeerMaxFds(int peerMaxFds) {
        this.peerMaxFds = peerMaxFds;
    }

    /** @return why the channel is out of step (every later receive throws), or null while it is usable */
    public String brokenReason() {
        return broken;
    }

    /** @return the socket (owned by the channel) */
    public UnixSocket socket() {
        return socket;
    }

    /**
     * Sends one message.
     *
     * @param header  its header; {@code messageSize} must be 16 + the payload's readable bytes
     * @param payload the bytes after the header (read, not released)
     * @param fds     sent as SCM_RIGHTS (still owned by the caller); at most the peer's max_msg_fds and what the command allows
     * @throws IllegalArgumentException for a size mismatch or fds the message may not carry
     * @throws PeerClosedException      when the peer has gone (EPIPE, ECONNRESET)
     * @throws VfioUserTransportException for another sendmsg error
     */
    public void send(VfioUserHeader header, ByteBuf payload, int... fds) {
        send(header, payload, null, fds);
    }

    /**
     * Sends one message, waiting at most {@code timeout} for room in the socket (null: forever). A message not
     * sent whole in time may have been sent in part: the stream is then out of step, and the caller must give the
     * connection up.
     *
     * @throws SendTimeoutException when the peer does not read in time
     * @see #send(VfioUserHeader, ByteBuf, int...)
     */
    public void send(VfioUserHeader header, ByteBuf payload, Duration timeout, int... fds) {
        int payloadBytes = payload.readableBytes();
        if (header.messageSize() != VfioUserHeader.SIZE + payloadBytes) {
            throw new IllegalArgumentException("header says " + header.messageSize() + " bytes, message has " + (VfioUserHeader.SIZE + payloadBytes));
        }
        if (fds.length > peerMaxFds) {
            throw new IllegalArgumentException(header.command() + ": " + fds.length + " fds exceed the peer's max_msg_fds " + peerMaxFds);
        }
        if (header.isError() && fds.length > 0) {
            throw new IllegalArgumentException(header.command() + " error reply may carry no fds, not " + fds.length);
        }
        if (fds.length > header.command().maxFds(header.isReply())) {
            throw new IllegalArgumentException(header.command() + (header.isReply() ? " reply" : " request")
                    + " may carry at most " + header.command().maxFds(header.isReply()) + " fds, not " + fds.length);
        }
        synchronized (sendLock) {
            try (Arena arena = Arena.ofConfined()) {
                // Header and payload straight into the buffer sendmsg reads: the payload's one copy on this path.
                MemorySegment data = arena.allocate(header.messageSize());
                header.encode(data);
                payload.getBytes(payload.readerIndex(), data.asSlice(VfioUserHeader.SIZE).asByteBuffer());
                long sent = 0;
                int[] pending = fds;
                long deadline = timeout == null ? 0 : System.nanoTime() + timeout.toNanos();
                while (sent < data.byteSize()) {
                    long r = socket.sendRaw(data.asSlice(sent), pending, timeout == null ? 0 : SocketLibc.MSG_DONTWAIT);
                    if (r == -Errno.EAGAIN && timeout != null) {
                        long left = deadline - System.nanoTime();
                        if (left <= 0 || !socket.poll(SocketLibc.POLLOUT, Duration.ofNanos(left))) {
                            throw new SendTimeoutException(header.command() + (header.isReply() ? " reply " : " ")
                                    + header.messageId() + " not sent within " + timeout.toMillis() + " ms (" + sent + " of "
                                    + data.byteSize() + " bytes): the peer does not read its socket");
                        }
                        continue;
                    }
                    if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                        continue;
                    }
                    if (r == -Errno.EPIPE || r == -Errno.ECONNRESET) {
                        throw new PeerClosedException("vfio-user peer closed the connection while sending " + header.command());
                    }
                    if (r < 0) {
                        throw new VfioUserTransportException("sending " + header.command(), new LinuxException("sendmsg", (int) -r));
                    }
                    sent += r;
                    pending = new int[0]; // the fds went with the first byte
                }
            }
        }
    }

    /** Sends a command: a fresh header for {@code payload}. */
    public void sendCommand(int messageId, VfioUserCommand command, boolean noReply, ByteBuf payload, int... fds) {
        send(VfioUserHeader.command(messageId, command, payload.readableBytes(), noReply), payload, fds);
    }

    /** Sends a reply to {@code request} carrying {@code payload}. */
    public void sendReply(VfioUserHeader request, ByteBuf payload, int... fds) {
        send(VfioUserHeader.reply(request.messageId(), request.command(), payload.readableBytes()), payload, fds);
    }

    /** Sends a reply to {@code request} carrying {@code payload}, waiting at most {@code timeout} (see {@link #send(VfioUserHeader, ByteBuf, Duration, int...)}). */
    public void sendReply(VfioUserHeader request, ByteBuf payload, Duration timeout) {
        send(VfioUserHeader.reply(request.messageId(), request.command(), payload.readableBytes()), payload, timeout);
    }

    /** Sends an error reply (the header alone, spec "Header"). */
    public void sendError(int messageId, VfioUserCommand command, int errno) {
        send(VfioUserHeader.errorReply(messageId, command, errno), Unpooled.EMPTY_BUFFER);
    }

    /** Sends an error reply, waiting at most {@code timeout} (see {@link #send(VfioUserHeader, ByteBuf, Duration, int...)}). */
    public void sendError(int messageId, VfioUserCommand command, int errno, Duration timeout) {
        send(VfioUserHeader.errorReply(messageId, command, errno), Unpooled.EMPTY_BUFFER, timeout);
    }

    /**
     * Sends an error reply to a message whose Command field names no {@link VfioUserCommand}
     * (the header alone, that number echoed, spec "Header").
     *
     * @param commandCode the offending message's Command field, 0..65535
     */
    public void sendErrorRaw(int messageId, int commandCode, int errno) {
        ByteBuf b = Unpooled.buffer(VfioUserHeader.SIZE);
        b.writeShortLE(messageId);
        b.writeShortLE(commandCode);
        b.writeIntLE(VfioUserHeader.SIZE);
        b.writeIntLE(vfio_user_h.VFIO_USER_F_TYPE_REPLY() | vfio_user_h.VFIO_USER_F_ERROR());
        b.writeIntLE(errno);
        synchronized (sendLock) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment data = arena.allocate(VfioUserHeader.SIZE);
                MemorySegment.copy(b.array(), b.arrayOffset(), data, JAVA_BYTE, 0, VfioUserHeader.SIZE);
                long sent = 0;
                while (sent < VfioUserHeader.SIZE) {
                    long r = socket.sendRaw(data.asSlice(sent), new int[0]);
                    if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                        continue;
                    }
                    if (r == -Errno.EPIPE || r == -Errno.ECONNRESET) {
                        throw new PeerClosedException("vfio-user peer closed the connection while sending an error reply");
                    }
                    if (r < 0) {
                        throw new VfioUserTransportException("sending an error reply", new LinuxException("sendmsg", (int) -r));
                    }
                    sent += r;
                }
            }
        }
    }

    /**
     * Receives one whole message.
     *
     * @param timeout for the whole message; null waits forever
     * @return the message; close it (try-with-resources) to close the fds nobody took
     * @throws PeerClosedException        at end of stream (before or within a message)
     * @throws ReceiveTimeoutException    when the message is not complete in time
     * @throws VfioUserProtocolException  for a message that breaks the protocol (its fds closed)
     * @throws VfioUserTransportException for a recvmsg error, or when the channel is broken
     */
    public ReceivedMessage receive(Duration timeout) {
        synchronized (receiveLock) {
            if (broken != null) {
                throw new VfioUserTransportException("vfio-user channel is broken: " + broken);
            }
            long deadline = timeout == null ? Long.MAX_VALUE : System.nanoTime() + timeout.toNanos();
            List<Integer> fds = new ArrayList<>();
            boolean ok = false;
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment head = arena.allocate(VfioUserHeader.SIZE);
                boolean truncated = readFully(head, 0, fds, deadline, timeout);
                ByteBuf hb = Unpooled.wrappedBuffer(head.toArray(JAVA_BYTE));
                int id = hb.getUnsignedShortLE(0);
                int code = hb.getUnsignedShortLE(2);
                long size = hb.getUnsignedIntLE(4);
                try {
                    VfioUserHeader.checkSize(size, maxMessageSize);
                } catch (VfioUserProtocolException e) {
                    broken = e.getMessage();
                    throw e.at(id, code);
                }
                byte[] payload = new byte[(int) size - VfioUserHeader.SIZE];
                if (payload.length > 0) {
                    MemorySegment body = arena.allocate(payload.length);
                    truncated |= readFully(body, VfioUserHeader.SIZE, fds, deadline, timeout);
                    MemorySegment.copy(body, JAVA_BYTE, 0, payload, 0, payload.length);
                }
                VfioUserHeader header = VfioUserHeader.decode(hb, maxMessageSize);
                checkFds(header, fds.size(), truncated);
                ReceivedMessage m = new ReceivedMessage(header, payload, new ReceivedFds(fds.stream().mapToInt(Integer::intValue).toArray()));
                ok = true;
                return m;
            } catch (PeerClosedException e) {
                broken = e.getMessage();
                throw e;
            } catch (ReceiveTimeoutException e) {
                if (partial) {
                    // Part of a message was consumed: what follows is not a header any more.
                    broken = e.getMessage();
                }
                throw e;
            } finally {
                partial = false;
                lateFds = 0;
                tooMany = 0;
                if (!ok) {
                    new ReceivedFds(fds.stream().mapToInt(Integer::intValue).toArray()).close();
                }
            }
        }
    }

    private void checkFds(VfioUserHeader header, int count, boolean truncated) {
        String kind = header.isReply() ? " reply" : " request";
        String why = null;
        int errno = Errno.EINVAL;
        if (lateFds > 0) {
            why = lateFds + " fds came with payload bytes, not with the header (closed)";
        } else if (tooMany > 0) {
            why = (count + tooMany) + " fds exceed max_msg_fds " + maxReceiveFds;
        } else if (truncated) {
            why = "more than " + SocketLibc.SCM_MAX_FD + " fds (control message truncated)";
        } else if (count > maxReceiveFds) {
            why = count + " fds exceed max_msg_fds " + maxReceiveFds;
        } else if (header.isError() && count > 0) {
            why = "an error reply carries " + count + " fds";
        } else if (count > header.command().maxFds(header.isReply())) {
            why = count + " fds, the command carries at most " + header.command().maxFds(header.isReply());
        }
        if (why != null) {
            LOG.warn("vfio-user {}{} {}: rejected, {}", header.command(), kind, header.messageId(), why);
            throw new VfioUserProtocolException(errno, "vfio-user " + header.command() + kind + ": " + why)
                    .at(header.messageId(), header.command().code());
        }
    }

    /**
     * Reads exactly {@code buffer.byteSize()} bytes, adding the fds that come to {@code fds}.
     *
     * @param already bytes of this message read before, for messages
     * @return true when a control message was truncated (MSG_CTRUNC)
     */
    private boolean readFully(MemorySegment buffer, long already, List<Integer> fds, long deadline, Duration timeout) {
        long got = 0;
        boolean truncated = false;
        while (got < buffer.byteSize()) {
            Duration left = timeout == null ? null : Duration.ofNanos(Math.max(0, deadline - System.nanoTime()));
            if (!socket.poll(SocketLibc.POLLIN, left)) {
                throw new ReceiveTimeoutException("no whole vfio-user message within " + timeout
                        + (already + got > 0 ? " (stopped after " + (already + got) + " bytes)" : ""));
            }
            UnixSocket.Received r = socket.receiveRaw(buffer.asSlice(got));
            if (already + got == 0 && r.bytes() > 0 && r.fds().length <= maxReceiveFds) {
                // The message's first recvmsg: its fds came with the header's first byte, as a sender sends them.
                for (int fd : r.fds()) {
                    fds.add(fd);
                }
            } else if (r.fds().length > 0) {
                // Fds on later bytes, or more than we take: closed now, so that a sprayer cannot pile them up.
                int n = r.fds().length;
                new ReceivedFds(r.fds()).close();
                if (already + got == 0 && r.bytes() > 0) {
                    tooMany += n;
                } else {
                    lateFds += n;
                }
            }
            truncated |= r.controlTruncated();
            if (r.bytes() == -Errno.EINTR || r.bytes() == -Errno.EAGAIN) {
                continue;
            }
            if (r.bytes() == -Errno.ECONNRESET || r.bytes() == 0) {
                throw new PeerClosedException(already + got == 0
                        ? "vfio-user peer closed the connection"
                        : "vfio-user peer closed the connection mid-message, after " + (already + got) + " bytes");
            }
            if (r.bytes() < 0) {
                throw new VfioUserTransportException("receiving a vfio-user message", new LinuxException("recvmsg", (int) -r.bytes()));
            }
            got += r.bytes();
            partial = true;
        }
        return truncated;
    }

    /**
     * Shuts the socket down and closes it. Stop receiving threads first: one blocked in
     * {@link #receive} wakes on the shutdown with {@link PeerClosedException} or an error.
     */
    @Override
    public void close() {
        socket.shutdown();
        socket.close();
    }
}
