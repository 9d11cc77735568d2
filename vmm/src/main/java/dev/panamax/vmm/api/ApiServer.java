package dev.panamax.vmm.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The control socket of a running machine ({@code panamax run --api-socket PATH}, issue 17): a UNIX stream socket on
 * which a client sends requests and reads replies, each one line of JSON (UTF-8, ending in {@code '\n'}), one reply per
 * request line, in order. {@code panamax ctl} ({@link ApiClient}) is its client; {@code socat - UNIX-CONNECT:PATH}
 * does as well.
 *
 * <h2>Requests</h2>
 * <pre>
 * {"command": "status"}
 * {"command": "pause"}
 * {"command": "resume"}
 * {"command": "snapshot", "dir": "/abs/path"}     the directory is created if missing; it must hold no snapshot
 * {"command": "migrate", "socket": "/abs/path"}   a destination waiting with --incoming unix:/abs/path
 * </pre>
 * Paths are absolute (the VMM's working directory is not the client's). A request has no other fields.
 *
 * <h2>Replies</h2>
 * <pre>
 * {"ok": true, "state": "running", "cpus": 2, "memory_bytes": 536870912, "uptime_ms": 5120}     status ("running" or "paused")
 * {"ok": true}                                                                                  pause, resume
 * {"ok": true, "socket": "/abs/path", "downtime_ms": 45, "rounds": 4, "bytes_sent": 60817408, "total_ms": 900}   migrate
 * {"ok": true, "dir": "/abs/path", "ram_bytes": 41943040, "disk_bytes": 42012345, "paused_ms": 180}   snapshot
 * {"ok": false, "error": "snapshot: /abs/path is not empty"}                                   any request that failed
 * </pre>
 * {@code ram_bytes} is the guest RAM saved (the RAM file's size), {@code disk_bytes} what the snapshot's files take on
 * disk (the RAM file is sparse: pages of zeros are holes), {@code paused_ms} how long the vCPUs stood still for it
 * (see {@link VmControl.SnapshotResult}); {@code downtime_ms} is from the source's pause to the destination's running,
 * and the source ends after this reply ({@link VmControl.MigrationResult}). A failed request leaves the VM running as
 * it was ({@link VmControl}).
 *
 * <h2>Limits (the peer is not trusted)</h2>
 * A request line is at most {@value #MAX_LINE_BYTES} bytes: a longer one gets an error reply and the connection is
 * closed. Bad JSON, a request that is not an object, an unknown command, a missing, ill-typed or unknown field get an
 * error reply and the connection stays open. At most {@value #MAX_CONNECTIONS} connections at once, each served by its
 * own thread; one more gets {@code {"ok":false,"error":"too many connections ..."}} and is closed. A connection that
 * sends no complete request line within the idle limit (default 60 s) of its opening or of its last reply is closed.
 * Requests reach the VM one at a time, whichever connection they come from. The socket file is made 0600 and only
 * peers running as its owner's uid are served ({@code SO_PEERCRED}).
 *
 * <p>Threads: "api-server" accepts, "api-connection-N" serves one connection; all are daemon platform threads that
 * log what ends them via SLF4J.
 */
public final class ApiServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ApiServer.class);

    /** Longest request line, in bytes without its {@code '\n'}. */
    public static final int MAX_LINE_BYTES = 64 * 1024;
    /** Connections served at once. */
    public static final int MAX_CONNECTIONS = 4;
    /** How long a connection may go without sending a whole request line. */
    public static final Duration DEFAULT_IDLE_LIMIT = Duration.ofSeconds(60);

    /** {@code S_IFMT} and {@code S_IFSOCK} of {@code st_mode} ({@code <sys/stat.h>}). */
    private static final int S_IFMT = 0170000, S_IFSOCK = 0140000;
    /** How long a refused peer gets to take its one-line error reply. */
    private static final long REFUSAL_WRITE_NANOS = 100_000_000L;

    private final Path socketPath;
    private final ServerSocketChannel server;
    private final UserPrincipal owner;
    private final ApiProtocol protocol;
    private final long idleNanos;
    private final Semaphore slots = new Semaphore(MAX_CONNECTIONS);
    private final Set<LineChannel> open = ConcurrentHashMap.newKeySet();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final AtomicInteger connectionCount = new AtomicInteger();
    /** Requests being executed or their replies written; {@link #close(Duration)} waits for them. Guarded by itself. */
    private final int[] inFlight = new int[1];
    private final Thread acceptor;

    private ApiServer(Path socketPath, ServerSocketChannel server, UserPrincipal owner, VmControl vm, Duration idleLimit) {
        this.socketPath = socketPath;
        this.server = server;
        this.owner = owner;
        this.protocol = new ApiProtocol(vm);
        this.idleNanos = idleLimit.toNanos();
        this.acceptor = Thread.ofPlatform().name("api-server").daemon().unstarted(this::acceptLoop);
    }

    /** {@link #start(Path, VmControl, Duration)} with the {@linkplain #DEFAULT_IDLE_LIMIT default idle limit}. */
    public static ApiServer start(Path socketPath, VmControl vm) {
        return start(socketPath, vm, DEFAULT_IDLE_LIMIT);
    }

    /**
     * Listens on {@code socketPath} and serves {@code vm} until {@link #close()}.
     *
     * @param idleLimit how long a connection may take to send a whole request line (positive)
     * @throws IllegalArgumentException when something listens on {@code socketPath} already, or it exists and is not a
     *                                  socket (a socket file nobody listens on is stale: it is removed and replaced)
     * @throws UncheckedIOException     when the socket cannot be made (no such directory, no permission, a path longer
     *                                  than {@code sun_path}'s 108 bytes); the message names the path
     */
    public static ApiServer start(Path socketPath, VmControl vm, Duration idleLimit) {
        if (idleLimit.isNegative() || idleLimit.isZero()) {
            throw new IllegalArgumentException("idle limit must be positive, not " + idleLimit);
        }
        removeStale(socketPath);
        ServerSocketChannel server = null;
        boolean bound = false;
        try {
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(socketPath), MAX_CONNECTIONS * 4);
            bound = true;
            Files.setPosixFilePermissions(socketPath, PosixFilePermissions.fromString("rw-------"));
            UserPrincipal owner = Files.getOwner(socketPath, LinkOption.NOFOLLOW_LINKS);
            ApiServer api = new ApiServer(socketPath, server, owner, vm, idleLimit);
            api.acceptor.start();
            LOG.info("control socket listening on {}", socketPath);
            return api;
        } catch (IOException | RuntimeException e) {
            if (server != null) {
                try {
                    server.close();
                    if (bound) {
                        Files.deleteIfExists(socketPath);
                    }
                } catch (IOException | RuntimeException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            if (e instanceof IOException io) {
                throw new UncheckedIOException("cannot listen on the api socket " + socketPath + ": " + io.getMessage(), io);
            }
            throw (RuntimeException) e;
        }
    }

    /** Removes {@code path} if it is a socket nobody listens on; refuses a live socket and anything not a socket. */
    private static void removeStale(Path path) {
        int mode;
        try {
            if (!Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
                return;
            }
            mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            throw new UncheckedIOException("api socket " + path + ": cannot tell what it is: " + e.getMessage(), e);
        }
        if ((mode & S_IFMT) != S_IFSOCK) {
            throw new IllegalArgumentException("api socket " + path + " exists and is not a socket: remove it or choose another path");
        }
        try {
            SocketChannel.open(UnixDomainSocketAddress.of(path)).close();
            throw new IllegalArgumentException("api socket " + path + ": another process listens there (a running panamax?)");
        } catch (ConnectException refused) {
            try {
                Files.deleteIfExists(path);
                LOG.info("removed the stale api socket {} (nothing listened there)", path);
            } catch (IOException e) {
                throw new UncheckedIOException("api socket " + path + ": cannot remove the stale socket: " + e.getMessage(), e);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("api socket " + path + ": cannot tell whether it is in use: " + e.getMessage(), e);
        }
    }

    /** @return the socket's path, as given to {@link #start} */
    public Path socketPath() {
        return socketPath;
    }

    private void acceptLoop() {
        try {
            while (!closed.get()) {
                SocketChannel peer;
                try {
                    peer = server.accept();
                } catch (ClosedChannelException e) {
                    break; // close()
                } catch (IOException e) {
                    LOG.warn("control socket {}: accept failed: {}", socketPath, e.toString());
                    Thread.sleep(100); // e.g. EMFILE: do not spin
                    continue;
                }
                admit(peer);
            }
        } catch (Throwable t) {
            if (!closed.get()) {
                LOG.error("control socket {}: the api-server thread stopped; no more connections are accepted", socketPath, t);
            }
        }
    }

    /** Serves {@code peer} on a thread of its own, or refuses it with one error line. */
    private void admit(SocketChannel peer) throws IOException {
        LineChannel line = new LineChannel(peer, MAX_LINE_BYTES);
        String refusal = null;
        try {
            UnixDomainPrincipal who = peer.getOption(ExtendedSocketOptions.SO_PEERCRED);
            if (!owner.equals(who.user())) {
                LOG.warn("control socket {}: refused a peer running as {} (only {} is served)", socketPath, who.user(), owner);
                refusal = "permission denied: this socket serves only its owner's uid";
            }
        } catch (IOException | UnsupportedOperationException e) {
            LOG.warn("control socket {}: refused a peer whose credentials are unknown: {}", socketPath, e.toString());
            refusal = "permission denied: peer credentials unknown";
        }
        if (refusal == null && !slots.tryAcquire()) {
            LOG.warn("control socket {}: refused a connection: {} are open", socketPath, MAX_CONNECTIONS);
            refusal = "too many connections (at most " + MAX_CONNECTIONS + " at once)";
        }
        if (refusal != null) {
            try (line) {
                line.writeLine(ApiProtocol.JSON.writeValueAsBytes(ApiProtocol.error(refusal)), System.nanoTime() + REFUSAL_WRITE_NANOS);
            } catch (IOException e) {
                LOG.debug("control socket {}: refused peer gone: {}", socketPath, e.toString());
            }
            return;
        }
        open.add(line);
        if (closed.get()) { // close() ran between accept and add: it did not see this one
            open.remove(line);
            slots.release();
            line.close();
            return;
        }
        Thread.ofPlatform().name("api-connection-" + connectionCount.incrementAndGet()).daemon().start(() -> serve(line));
    }

    private void serve(LineChannel line) {
        try (line) {
            while (!closed.get()) {
                byte[] request;
                try {
                    request = line.readLine(System.nanoTime() + idleNanos);
                } catch (LineChannel.LineTooLongException e) {
                    LOG.warn("control socket {}: {}; closing the connection", socketPath, e.getMessage());
                    write(line, ApiProtocol.error(e.getMessage() + "; closing the connection"));
                    return;
                } catch (LineChannel.DeadlineException e) {
                    LOG.debug("control socket {}: a connection idle for {} ms is closed", socketPath, idleNanos / 1_000_000);
                    return;
                }
                if (request == null) {
                    return; // the peer closed
                }
                synchronized (inFlight) {
                    inFlight[0]++;
                }
                try {
                    write(line, protocol.handle(request));
                } finally {
                    synchronized (inFlight) {
                        inFlight[0]--;
                        inFlight.notifyAll();
                    }
                }
            }
        } catch (ClosedChannelException e) { // also AsynchronousCloseException: close() or the peer
            LOG.debug("control socket {}: connection closed", socketPath);
        } catch (IOException e) {
            LOG.debug("control socket {}: connection ended: {}", socketPath, e.toString());
        } catch (Throwable t) {
            LOG.error("control socket {}: the connection's thread failed", socketPath, t);
        } finally {
            open.remove(line);
            slots.release();
        }
    }

    private void write(LineChannel line, com.fasterxml.jackson.databind.node.ObjectNode reply) throws IOException {
        byte[] bytes;
        try {
            bytes = ApiProtocol.JSON.writeValueAsBytes(reply);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a reply that is not JSON: " + e.getMessage(), e);
        }
        line.writeLine(bytes, System.nanoTime() + idleNanos);
    }

    /**
     * Stops accepting, closes every connection (a request being executed finishes, its reply is lost) and removes the
     * socket file. Idempotent.
     */
    @Override
    public void close() {
        close(Duration.ZERO);
    }

    /**
     * {@link #close()}, but a request being executed first gets up to {@code drain} to finish and write its reply (a
     * {@code migrate} whose success ends the machine).
     */
    public void close(Duration drain) {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            server.close();
        } catch (IOException e) {
            LOG.warn("control socket {}: close: {}", socketPath, e.toString());
        }
        long deadline = System.nanoTime() + drain.toNanos();
        synchronized (inFlight) {
            long left;
            while (inFlight[0] > 0 && (left = (deadline - System.nanoTime()) / 1_000_000) > 0) {
                try {
                    inFlight.wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
        }
        for (LineChannel c : open) {
            try {
                c.close();
            } catch (IOException e) {
                LOG.debug("control socket {}: closing a connection: {}", socketPath, e.toString());
            }
        }
        try {
            acceptor.join(Duration.ofSeconds(2));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            LOG.warn("control socket {}: cannot remove the socket file: {}", socketPath, e.toString());
        }
        LOG.debug("control socket {} closed", socketPath);
    }
}
