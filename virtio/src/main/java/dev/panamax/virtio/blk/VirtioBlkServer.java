package dev.panamax.virtio.blk;

import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.VfioUserTransportException;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.virtio.VirtioPciTransport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Serves a disk image as a {@link VirtioBlk} vfio-user device (on a {@link VirtioPciTransport}) on a
 * UNIX socket path (mode 0600), one client at a time, each with a fresh device, until {@link #close}d. A client
 * whose uid ({@code SO_PEERCRED}) is neither ours nor the one allowed is refused with one WARN line; one that does
 * not negotiate in time is dropped (the server's {@link VfioUserServer.Deadlines}). The listening socket stays open between
 * clients (a client that connects while another is served waits in the backlog); its file is
 * removed on close.
 */
public final class VirtioBlkServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlkServer.class);
    /** How often the accept loop looks whether it was closed. */
    private static final Duration POLL = Duration.ofMillis(200);

    private final Path socketPath;
    private final Path disk;
    private final VirtioBlk.Options options;
    private final UnixSocket listener;
    private final int allowUid;
    private final VfioUserServer.Deadlines deadlines;
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile boolean closing;
    private volatile boolean running;
    private VfioUserServer current;
    private int served;

    /**
     * Checks the disk image and listens on {@code socketPath}.
     *
     * @throws IllegalArgumentException when the disk image is unusable (see {@link VirtioBlk#VirtioBlk}), the socket
     *                                  path exists (in use by a server, or stale) or cannot be bound
     */
    public VirtioBlkServer(Path socketPath, Path disk, VirtioBlk.Options options) {
        this(socketPath, disk, options, -1, VfioUserServer.Deadlines.DEFAULT);
    }

    /**
     * As {@link #VirtioBlkServer(Path, Path, VirtioBlk.Options)}, also serving clients of {@code allowUid} (besides
     * our own uid; -1: none), with the server's {@code deadlines}.
     */
    public VirtioBlkServer(Path socketPath, Path disk, VirtioBlk.Options options, int allowUid, VfioUserServer.Deadlines deadlines) {
        this.allowUid = allowUid;
        this.deadlines = deadlines;
        this.socketPath = socketPath;
        this.disk = disk;
        this.options = options;
        new VirtioBlk(disk, options).close();
        if (Files.exists(socketPath, LinkOption.NOFOLLOW_LINKS)) {
            boolean inUse;
            try (UnixSocket probe = UnixSocket.connect(socketPath)) {
                inUse = true;
            } catch (RuntimeException e) {
                inUse = false;
            }
            throw new IllegalArgumentException(inUse
                    ? "socket " + socketPath + " is in use by another server"
                    : "socket path " + socketPath + " already exists (remove it if no server uses it)");
        }
        try {
            listener = UnixSocket.listen(socketPath, 1);
        } catch (LinuxException e) {
            throw new IllegalArgumentException("cannot listen on socket " + socketPath + ": " + e.getMessage(), e);
        }
        LOG.info("virtio-blk: serving {} ({}) on {}", disk, options.readOnly() ? "read-only" : "read-write", socketPath);
    }

    /** @return the socket path clients connect to */
    public Path socketPath() {
        return socketPath;
    }

    /** @return how many clients have come and gone */
    public synchronized int clientsServed() {
        return served;
    }

    /**
     * Accepts and serves clients, one at a time, until {@link #close}. A client that breaks the
     * protocol is dropped (by the server library); the loop goes on.
     */
    public void run() {
        running = true;
        try {
            while (!closing) {
                UnixSocket socket;
                try {
                    socket = listener.accept(POLL);
                } catch (ReceiveTimeoutException e) {
                    continue;
                }
                try {
                    serveOne(socket);
                } catch (RuntimeException | Error e) {
                    // Contained (issue 15, defect 9): this client is dropped with one line, the next one is served.
                    LOG.error("virtio-blk: client dropped: {}", e.toString());
                    socket.close();
                }
            }
        } finally {
            listener.close();
            removeSocketFile();
            stopped.countDown();
        }
    }

    private void serveOne(UnixSocket socket) {
        try {
            VfioUserServer.checkPeer(socket, allowUid);
        } catch (VfioUserTransportException e) {
            LOG.warn("virtio-blk: {}", e.getMessage());
            return;
        }
        VirtioBlk blk;
        try {
            blk = new VirtioBlk(disk, options);
        } catch (RuntimeException e) {
            LOG.error("virtio-blk: client refused: {}", e.getMessage());
            socket.close();
            return;
        }
        try (blk) {
            VfioUserServer server;
            synchronized (this) {
                server = new VirtioPciTransport(blk, options.dmaByMessages()).serve(socket, deadlines);
                current = server;
            }
            LOG.info("virtio-blk: client connected");
            if (closing) {
                server.close();
            }
            while (!server.awaitDisconnect(Duration.ofSeconds(1))) {
                // until the client goes or close() disconnects it
            }
            server.close();
            LOG.info("virtio-blk: client disconnected: {}", blk.statistics());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            closing = true;
        } finally {
            synchronized (this) {
                current = null;
                served++;
            }
        }
    }

    private void removeSocketFile() {
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            LOG.warn("could not remove socket {}: {}", socketPath, e.toString());
        }
    }

    /** Disconnects the current client, stops the accept loop and removes the socket file; waits up to 5 s for {@link #run} to end. */
    @Override
    public void close() {
        closing = true;
        VfioUserServer server;
        synchronized (this) {
            server = current;
        }
        if (server != null) {
            server.close();
        }
        if (running) {
            try {
                if (!stopped.await(5, TimeUnit.SECONDS)) {
                    LOG.warn("virtio-blk: the accept loop did not stop within 5 s");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        } else {
            listener.close();
            removeSocketFile();
        }
    }
}
