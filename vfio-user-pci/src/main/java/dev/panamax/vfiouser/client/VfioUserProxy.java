package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VersionCodec.Capabilities;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.PeerClosedException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.SocketLibc;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.vfiouser.transport.VfioUserTransportException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The client's end of one vfio-user connection (QEMU: {@code hw/vfio-user/proxy.c}): VERSION negotiation, message
 * IDs, requests waiting for their replies, the receive thread, request deadlines, the broken state and the permits
 * of posted writes. What the messages mean is for the device I/O ops ({@link VfioUserDeviceIo}) and the DMA backend
 * ({@link VfioUserDmaBackend}); messages the server sends on its own (DMA_READ / DMA_WRITE) go to the consumer
 * given to {@link #start}.
 *
 * <p>Threads: callers send requests and wait for their replies; one platform thread receives every message, hands
 * replies to their waiters by message ID and checks the deadlines. It never waits to send, so a server that stops
 * reading cannot stop the deadlines. Every request has a deadline ({@link VfioUserClient.Options#requestTimeout()}).
 *
 * <p>Broken: when the server closes the connection, does not answer in time, or breaks the protocol, the proxy
 * logs one ERROR line naming the socket and what happened, shuts the socket down, fails every waiting request with
 * {@link VfioUserDeviceBrokenException}, and tells the {@code onBroken} consumer once (from the thread that noticed).
 */
final class VfioUserProxy {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserProxy.class);
    /** {@code --trace}: each message sent and received, one line, with its command, id and decoded fields. */
    static final Logger TRACE = LoggerFactory.getLogger("dev.panamax.trace.vfiouser");
    /** Most bytes of a region info reply we ask for (capability chain included). */
    static final long REGION_INFO_MAX = 64 * 1024;

    /** Decodes a reply payload. */
    interface Decoder<T> {
        T decode(ByteBuf in);
    }

    /**
     * Checks, on the receive thread, a posted request's reply that is no error reply.
     */
    interface PostedReplyCheck {
        /**
         * @return null when the request did what was asked, else what it did not do (counted as a posted-write error)
         * @throws VfioUserDeviceBrokenException from {@link #breakNow} when the reply breaks the protocol
         */
        String check(ReceivedMessage reply);
    }

    /** A request waiting for its reply; a posted one ({@code posted} non-null) has its reply checked by the receive thread. */
    private record Pending(int id, VfioUserCommand command, String what, long deadline, PostedReplyCheck posted,
                           CompletableFuture<ReceivedMessage> reply) {
    }

    private final String name;
    private final VfioUserClient.Options options;
    private final Consumer<String> onBroken;
    private final MessageChannel channel;
    private final Thread receiver;
    private Consumer<ReceivedMessage> fromServer;
    private final ConcurrentHashMap<Integer, Pending> pending = new ConcurrentHashMap<>();
    private final AtomicInteger nextId = new AtomicInteger();
    private final Semaphore postedPermits;
    private final AtomicLong postedErrors = new AtomicLong();
    private final AtomicLong postedErrorsReported = new AtomicLong();
    private volatile String lastPostedError;
    private final Object brokenLock = new Object();
    private volatile String broken;
    private volatile boolean closing;
    private volatile Capabilities server = Capabilities.NONE;
    private volatile long maxXfer;

    /**
     * @param socket   owned by the proxy from now on
     * @param name     for messages, e.g. the socket path
     * @param onBroken told once, with the reason, when the connection breaks
     */
    VfioUserProxy(UnixSocket socket, String name, VfioUserClient.Options options, Consumer<String> onBroken) {
        this.name = name;
        this.options = options;
        this.onBroken = onBroken;
        this.channel = new MessageChannel(socket, VfioUserClient.MAX_MSG_FDS,
                VfioUserHeader.SIZE + 16 + Math.max(options.maxDataXferSize(), REGION_INFO_MAX));
        this.postedPermits = new Semaphore(options.maxPostedWrites());
        this.maxXfer = Math.min(options.maxDataXferSize(), VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE);
        this.receiver = Thread.ofPlatform().name("vfio-user-client " + name).daemon().unstarted(this::receiveLoop);
    }

    /** Starts the receive thread; the server's own requests (not replies) go to {@code fromServer}, which owns them. */
    void start(Consumer<ReceivedMessage> fromServer) {
        this.fromServer = fromServer;
        receiver.start();
    }

    /**
     * Negotiates VERSION (spec, "VFIO_USER_VERSION"): we offer {@code max_msg_fds} {@value VfioUserClient#MAX_MSG_FDS},
     * our {@code max_data_xfer_size}, no migration; we honour the server's {@code max_msg_fds},
     * {@code max_data_xfer_size}, {@code pgsizes} and {@code max_dma_maps}.
     *
     * @throws VfioUserDeviceBrokenException when the server does not answer in time or breaks the protocol
     * @throws VfioUserClientException       when the server refuses our version
     */
    void negotiate() {
        ByteBuf out = Unpooled.buffer();
        VersionCodec.encode(new VersionCodec.Version(VersionCodec.MAJOR, VersionCodec.MINOR,
                new Capabilities(VfioUserClient.MAX_MSG_FDS, options.maxDataXferSize(), null, null, null, null)), out);
        VersionCodec.Version v;
        try (ReceivedMessage m = requestOk(VfioUserCommand.VERSION, out, "VERSION")) {
            v = decode(m, "VERSION", VersionCodec::decode);
        }
        if (v.major() != VersionCodec.MAJOR || v.minor() > VersionCodec.MINOR) {
            throw new VfioUserClientException(Errno.EOPNOTSUPP, "vfio-user " + name + ": the server answered version "
                    + v.major() + "." + v.minor() + ", we speak " + VersionCodec.MAJOR + "." + VersionCodec.MINOR);
        }
        Capabilities c = v.capabilities() == null ? Capabilities.NONE : v.capabilities();
        if (c.effectiveMaxMsgFds() > SocketLibc.SCM_MAX_FD || c.effectiveMaxDataXferSize() < 1 || c.effectivePgsizes() == 0
                || c.effectiveMaxDmaMaps() < 1) {
            throw breakNow("VERSION reply has unusable capabilities " + c);
        }
        server = c;
        channel.setPeerMaxFds(c.effectiveMaxMsgFds());
        maxXfer = Math.min(options.maxDataXferSize(), c.effectiveMaxDataXferSize());
        LOG.debug("vfio-user {}: version {}.{}, server capabilities {}", name, v.major(), v.minor(), c);
    }

    // ---------------------------------------------------------------- state

    /** @return the name given at connect, e.g. the socket path */
    String name() {
        return name;
    }

    VfioUserClient.Options options() {
        return options;
    }

    /** @return the server's VERSION capabilities (absent members: defaults) */
    Capabilities server() {
        return server;
    }

    /** @return the largest data count of one message: min(ours, the server's max_data_xfer_size) */
    long maxXfer() {
        return maxXfer;
    }

    /** @return what broke the connection, or null */
    String brokenReason() {
        return broken;
    }

    /** @return true while neither broken nor closing */
    boolean usable() {
        return broken == null && !closing;
    }

    /** @return posted requests sent and not yet answered */
    int outstandingPosted() {
        return options.maxPostedWrites() - postedPermits.availablePermits();
    }

    /** @return posted requests the server answered with an error (or did not do), since connect */
    long postedErrors() {
        return postedErrors.get();
    }

    /**
     * Waits until every posted request is answered.
     *
     * @throws VfioUserClientException when a posted request failed since the last flush (the message names the last one)
     */
    void flushPosted() {
        int n = options.maxPostedWrites();
        while (broken == null && !closing) {
            try {
                if (postedPermits.tryAcquire(n, 20, TimeUnit.MILLISECONDS)) {
                    postedPermits.release(n);
                    break;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        long errors = postedErrors.get();
        long before = postedErrorsReported.getAndSet(errors);
        if (errors > before) {
            throw new VfioUserClientException(Errno.EIO, "vfio-user " + name + ": " + (errors - before)
                    + " posted write(s) failed, the last: " + lastPostedError);
        }
    }

    // ---------------------------------------------------------------- requests

    /** Decodes a reply payload, all of it; a payload that breaks the protocol breaks the device. */
    <T> T decode(ReceivedMessage m, String what, Decoder<T> decoder) {
        try {
            ByteBuf in = m.payloadBuffer();
            T t = decoder.decode(in);
            if (in.isReadable()) {
                throw new VfioUserProtocolException(Errno.EINVAL, in.readableBytes() + " bytes too many");
            }
            return t;
        } catch (VfioUserProtocolException e) {
            throw breakNow(what + ": bad reply: " + e.getMessage());
        }
    }

    ReceivedMessage requestOk(VfioUserCommand command, ByteBuf payload, String what) {
        return requestOk(command, payload, new int[0], what);
    }

    /** A request whose error reply becomes a {@link VfioUserClientException}; close the reply. */
    ReceivedMessage requestOk(VfioUserCommand command, ByteBuf payload, int[] fds, String what) {
        ReceivedMessage m = request(command, payload, fds, what);
        if (m.header().isError()) {
            m.close();
            throw new VfioUserClientException(m.header().error(), "vfio-user " + name + ": " + what
                    + ": the server answered " + Errno.name(m.header().error()));
        }
        return m;
    }

    /**
     * Sends a request and waits for its reply (close it).
     *
     * @throws VfioUserDeviceBrokenException when the device is or becomes broken, or no reply comes in time
     */
    ReceivedMessage request(VfioUserCommand command, ByteBuf payload, int[] fds, String what) {
        checkUsable();
        Pending p = register(command, what, null);
        send(p, payload, fds);
        try {
            return p.reply.get(options.requestTimeout().toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            if (p.reply.completeExceptionally(e)) {
                pending.remove(p.id, p);
                throw breakNow("no reply to " + what + " within " + options.requestTimeout().toMillis() + " ms");
            }
            try {
                return p.reply.join(); // the reply came just now
            } catch (CompletionException broke) {
                // Or the receive thread marked the device broken just now (it fails every pending request).
                throw new VfioUserDeviceBrokenException(brokenMessage());
            }
        } catch (ExecutionException e) {
            throw new VfioUserDeviceBrokenException(brokenMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            if (!p.reply.completeExceptionally(e) && !p.reply.isCompletedExceptionally()) {
                p.reply.join().close();
            }
            pending.remove(p.id, p);
            throw new VfioUserClientException(Errno.EINTR, "vfio-user " + name + ": interrupted waiting for " + what);
        }
    }

    /**
     * Sends a request without waiting for its reply, which the receive thread awaits and checks: an error reply, or
     * one {@code check} finds short, is logged and counted ({@link #postedErrors}), a missing or malformed one breaks
     * the device. At most {@link VfioUserClient.Options#maxPostedWrites()} are outstanding; the caller waits for a
     * permit.
     */
    void post(VfioUserCommand command, ByteBuf payload, String what, PostedReplyCheck check) {
        while (true) {
            checkUsable();
            try {
                if (postedPermits.tryAcquire(20, TimeUnit.MILLISECONDS)) {
                    break;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new VfioUserClientException(Errno.EINTR, "vfio-user " + name + ": interrupted posting " + what);
            }
        }
        Pending p = register(command, what, check);
        send(p, payload, new int[0]);
    }

    /**
     * Answers a request of the server (DMA_READ / DMA_WRITE), waiting at most the request timeout for the server to
     * read. @throws VfioUserTransportException when sending fails or times out
     */
    void sendReply(VfioUserHeader request, ByteBuf payload) {
        channel.sendReply(request, payload, options.requestTimeout());
    }

    /** Answers a request of the server with an error. @throws VfioUserTransportException when sending fails */
    void sendError(VfioUserHeader request, int errno) {
        channel.sendError(request.messageId(), request.command(), errno, options.requestTimeout());
    }

    private Pending register(VfioUserCommand command, String what, PostedReplyCheck posted) {
        while (true) {
            int id = nextId.getAndIncrement() & 0xFFFF;
            Pending p = new Pending(id, command, what, System.nanoTime() + options.requestTimeout().toNanos(), posted,
                    new CompletableFuture<>());
            if (pending.putIfAbsent(id, p) == null) {
                if (broken != null || closing) {
                    // markBroken may have drained the map before we were in it.
                    forget(p);
                    checkUsable();
                }
                return p;
            }
            // That ID still waits for a reply (65536 requests later): take the next.
        }
    }

    private void send(Pending p, ByteBuf payload, int[] fds) {
        if (TRACE.isTraceEnabled()) {
            TRACE.trace("{} -> {} id {}{}: {}{}", name, p.command, p.id, p.posted != null ? " (posted)" : "", p.what,
                    fds.length == 0 ? "" : ", fds " + java.util.Arrays.toString(fds));
        }
        try {
            channel.sendCommand(p.id, p.command, false, payload, fds);
        } catch (VfioUserTransportException e) {
            forget(p);
            throw breakNow("sending " + p.what + ": " + e.getMessage());
        }
    }

    /** Removes a pending request; a posted one gives its permit back. */
    private void forget(Pending p) {
        if (pending.remove(p.id, p)) {
            if (p.posted != null) {
                postedPermits.release();
            }
            p.reply.completeExceptionally(new VfioUserDeviceBrokenException(brokenMessage()));
        }
    }

    /** @throws VfioUserDeviceBrokenException when the device is broken or closed */
    void checkUsable() {
        if (broken != null) {
            throw new VfioUserDeviceBrokenException(brokenMessage());
        }
        if (closing) {
            throw new VfioUserDeviceBrokenException("vfio-user " + name + " is closed");
        }
    }

    private String brokenMessage() {
        return broken != null ? "vfio-user device " + name + " is broken: " + broken : "vfio-user " + name + " is closed";
    }

    /** Marks the device broken (first reason wins) and returns the exception for the caller to throw. */
    VfioUserDeviceBrokenException breakNow(String reason) {
        markBroken(reason);
        return new VfioUserDeviceBrokenException(brokenMessage());
    }

    void markBroken(String reason) {
        synchronized (brokenLock) {
            if (broken != null || closing) {
                return;
            }
            // Logged before anyone can see the device broken.
            LOG.error("vfio-user device on socket {} is broken: {}; from now on reads return all-ones and writes are dropped",
                    name, reason);
            broken = reason;
            channel.socket().shutdown(); // the receive thread wakes and ends; the server sees end of stream
        }
        for (Pending p : pending.values()) {
            forget(p);
        }
        try {
            onBroken.accept(reason);
        } catch (Throwable e) {
            LOG.error("vfio-user {}: the broken-device listener failed: {}", name, e.toString());
        }
    }

    // ---------------------------------------------------------------- the receive thread

    private void receiveLoop() {
        long tick = Math.max(1, Math.min(100, options.requestTimeout().toMillis() / 4));
        try {
            while (broken == null && !closing) {
                checkDeadlines();
                if (!channel.socket().poll(SocketLibc.POLLIN, Duration.ofMillis(tick))) {
                    continue;
                }
                ReceivedMessage m = channel.receive(options.requestTimeout());
                if (m.header().isReply()) {
                    reply(m);
                } else {
                    fromServer.accept(m);
                }
            }
        } catch (PeerClosedException e) {
            markBroken("the server closed the connection" + (e.getMessage().contains("mid-message") ? " mid-message" : ""));
        } catch (VfioUserProtocolException e) {
            markBroken("bad message from the server: " + e.getMessage());
        } catch (VfioUserTransportException e) {
            markBroken(e.getMessage());
        } catch (VfioUserDeviceBrokenException e) {
            // already marked
        } catch (Throwable e) {
            // Any other error, an Error included (OutOfMemoryError, a SIGBUS on a mapping as InternalError): this
            // thread ends, so the device must not look usable (issue 15, defect 9).
            markBroken("receiving: " + e);
        }
    }

    private void reply(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        Pending p = pending.get(h.messageId());
        if (p == null || p.command != h.command()) {
            m.close();
            throw breakNow(p == null
                    ? "reply " + h.messageId() + " to " + h.command() + " answers no request we sent"
                    : "reply " + h.messageId() + " is for " + h.command() + ", the request was " + p.what);
        }
        if (!pending.remove(p.id, p)) {
            m.close();
            return;
        }
        if (TRACE.isTraceEnabled()) {
            TRACE.trace("{} <- {} id {} reply: {}", name, h.command(), h.messageId(), h.isError()
                    ? "error " + Errno.name(h.error()) : h.payloadSize() + " bytes, fds " + m.fds().count());
        }
        if (p.posted != null) {
            try (m) {
                postedReply(p, m);
            } finally {
                postedPermits.release();
            }
        } else if (!p.reply.complete(m)) {
            m.close(); // the waiter gave up
        }
    }

    private void postedReply(Pending p, ReceivedMessage m) {
        String failed;
        if (m.header().isError()) {
            failed = p.what + ": " + Errno.name(m.header().error());
            LOG.warn("vfio-user {}: posted {} failed: {}", name, p.what, Errno.name(m.header().error()));
        } else {
            failed = p.posted.check(m);
            if (failed != null) {
                LOG.warn("vfio-user {}: {}", name, failed);
            }
        }
        if (failed != null) {
            postedErrors.incrementAndGet();
            lastPostedError = failed;
        }
    }

    private void checkDeadlines() {
        long now = System.nanoTime();
        for (Pending p : pending.values()) {
            if (now - p.deadline > 0) {
                throw breakNow("no reply to " + (p.posted != null ? "posted " : "") + p.what + " within "
                        + options.requestTimeout().toMillis() + " ms");
            }
        }
    }

    // ---------------------------------------------------------------- closing

    /**
     * Stops: waits (up to the request timeout) for posted requests, shuts the socket down, ends the receive thread
     * and fails what still waits. The socket stays open until {@link #close}.
     */
    void shutdown() {
        if (broken == null && Thread.currentThread() != receiver) {
            long deadline = System.nanoTime() + options.requestTimeout().toNanos();
            while (broken == null && outstandingPosted() > 0 && System.nanoTime() - deadline < 0) {
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        synchronized (brokenLock) {
            closing = true;
        }
        channel.socket().shutdown();
        try {
            if (Thread.currentThread() != receiver && receiver.isAlive()) {
                receiver.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (Pending p : pending.values()) {
            forget(p);
        }
    }

    /** Closes the socket; after {@link #shutdown}. */
    void close() {
        channel.close();
    }
}
