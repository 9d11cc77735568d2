package dev.panamax.vmm.migration;

import com.fasterxml.jackson.core.JacksonException;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SavedMachine;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import jdk.net.ExtendedSocketOptions;
import jdk.net.UnixDomainPrincipal;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.time.Duration;
import java.util.List;

/**
 * The destination's half of a live migration ({@code panamax run --incoming unix:PATH}): listens on a UNIX socket
 * (made 0600, one peer of this socket's owner accepted, the socket file removed then), reads the stream
 * ({@link FrameChannel}) and gives the machine it carries to the restore as a {@link SavedMachine}: {@link #machine()}
 * and {@link #devices()} from the MACHINE frame ({@link #await}), guest RAM from the rounds of PAGES
 * ({@link #loadRam}), the state from STATE ({@link #state()}); {@link #running()} answers RUNNING, {@link #fail} ERROR.
 */
public final class IncomingMigration implements SavedMachine, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(IncomingMigration.class);

    /** How long {@code --incoming} waits for a source by default. */
    public static final Duration DEFAULT_WAIT = Duration.ofMinutes(10);
    /** How long the source may go silent once connected. */
    public static final Duration IO_TIMEOUT = Duration.ofSeconds(60);

    private final Path socket;
    private final FrameChannel channel;
    private final Json.Description description;
    private MachineState state;
    private long pages;
    private int rounds;

    private IncomingMigration(Path socket, FrameChannel channel, Json.Description description) {
        this.socket = socket;
        this.channel = channel;
        this.description = description;
    }

    /**
     * Listens on {@code socket} until a source connects, then reads the stream's header and MACHINE frame.
     *
     * @param wait how long to wait for the source
     * @throws MigrationException if none came in time, the socket cannot be made, or the peer sends no migration
     */
    public static IncomingMigration await(Path socket, Duration wait, Duration ioTimeout) {
        SocketChannel peer = accept(socket, wait);
        FrameChannel c = null;
        try {
            c = new FrameChannel(peer, ioTimeout);
            c.readHeader();
            FrameChannel.Frame f = c.read(FrameChannel.MACHINE);
            Json.Description d = Json.MAPPER.readValue(bytes(f.payload()), Json.Description.class);
            check(d);
            log.info("incoming migration on {}: {} vCPUs, {} MiB, devices {}", socket, d.machine().cpus(),
                    d.machine().memoryBytes() >> 20, d.devices());
            return new IncomingMigration(socket, c, d);
        } catch (RuntimeException | IOException e) {
            MigrationException m = e instanceof MigrationException x ? x
                    : new MigrationException("migration stream: the MACHINE frame is malformed: "
                    + (e instanceof JacksonException j ? j.getOriginalMessage() : e.getMessage()), e);
            if (c != null) {
                tryFail(c, m.getMessage());
                closeQuietly(c);
            } else {
                closeQuietly(peer);
            }
            throw m;
        }
    }

    private static void check(Json.Description d) {
        SnapshotManifest.Machine m = d == null ? null : d.machine();
        if (m == null || d.devices() == null || m.cpus() < 1 || m.cpus() > 254 || m.memoryBytes() < (32L << 20)
                || m.memoryBytes() % (2L << 20) != 0) {
            throw new MigrationException("migration stream: the MACHINE frame gives no valid machine (vCPUs 1 to 254,"
                    + " RAM a multiple of 2 MiB of at least 32 MiB)");
        }
    }

    private static SocketChannel accept(Path socket, Duration wait) {
        try {
            if (Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
                if (Files.isRegularFile(socket, LinkOption.NOFOLLOW_LINKS) || Files.isDirectory(socket, LinkOption.NOFOLLOW_LINKS)) {
                    throw new MigrationException(socket + " exists and is not a socket: give --incoming a new path");
                }
                Files.delete(socket); // a stale socket of an earlier run
            }
            try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                 Selector selector = Selector.open()) {
                server.bind(UnixDomainSocketAddress.of(socket));
                try {
                    Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
                    UserPrincipal owner = Files.getOwner(socket, LinkOption.NOFOLLOW_LINKS);
                    server.configureBlocking(false);
                    server.register(selector, SelectionKey.OP_ACCEPT);
                    log.info("waiting up to {} s for a migration on {}", wait.toSeconds(), socket);
                    long deadline = System.nanoTime() + wait.toNanos();
                    while (true) {
                        long left = (deadline - System.nanoTime()) / 1_000_000;
                        if (left <= 0) {
                            throw new MigrationException("no migration source connected to " + socket + " within "
                                    + wait.toSeconds() + " s");
                        }
                        selector.select(left);
                        selector.selectedKeys().clear();
                        SocketChannel peer = server.accept();
                        if (peer == null) {
                            continue;
                        }
                        UnixDomainPrincipal who = peer.getOption(ExtendedSocketOptions.SO_PEERCRED);
                        if (!who.user().equals(owner)) {
                            log.warn("migration socket {}: refused a peer running as {}", socket, who.user().getName());
                            peer.close();
                            continue;
                        }
                        return peer;
                    }
                } finally {
                    Files.deleteIfExists(socket);
                }
            }
        } catch (IOException | UnsupportedOperationException e) {
            throw new MigrationException("cannot listen on " + socket + ": " + e.getMessage(), e);
        }
    }

    @Override
    public SnapshotManifest.Machine machine() {
        return description.machine();
    }

    @Override
    public List<SnapshotManifest.Device> devices() {
        return description.devices();
    }

    @Override
    public String origin() {
        return "migration on " + socket;
    }

    @Override
    public String setting() {
        return "incoming";
    }

    /**
     * Reads the rounds of pages into {@code ram} (fresh, zero, of the machine's size) up to the STATE frame, which it
     * keeps for {@link #state()}, and the END after it.
     *
     * @throws MigrationException on a short or malformed stream: a page outside RAM or not page-aligned, a PAGES frame
     *                            that is no whole number of pages, a malformed ROUND_END or STATE
     */
    @Override
    public void loadRam(MemorySegment ram) {
        if (ram.byteSize() != description.machine().memoryBytes()) {
            throw new IllegalArgumentException("guest RAM of " + ram.byteSize() + " bytes for a machine of "
                    + description.machine().memoryBytes());
        }
        while (true) {
            FrameChannel.Frame f = channel.read(FrameChannel.PAGES, FrameChannel.ROUND_END, FrameChannel.STATE);
            ByteBuffer p = f.payload();
            switch (f.type()) {
                case FrameChannel.PAGES -> pages(ram, p);
                case FrameChannel.ROUND_END -> {
                    if (p.remaining() != 12) {
                        throw new MigrationException("migration stream: ROUND_END of " + p.remaining() + " bytes, not 12");
                    }
                    log.debug("migration: round {} of {} pages received", Integer.toUnsignedLong(p.getInt()), p.getLong());
                    rounds++;
                }
                default -> {
                    state = parseState(p);
                    channel.read(FrameChannel.END);
                    log.info("migration: {} rounds, {} pages ({} MiB) received", rounds, pages, pages * 4096 >> 20);
                    return;
                }
            }
        }
    }

    private void pages(MemorySegment ram, ByteBuffer p) {
        if (p.remaining() == 0 || p.remaining() % FrameChannel.PAGE_RECORD != 0) {
            throw new MigrationException("migration stream: PAGES frame of " + p.remaining()
                    + " bytes, not a whole number of " + FrameChannel.PAGE_RECORD + "-byte pages");
        }
        MemorySegment data = MemorySegment.ofBuffer(p);
        for (int at = 0; at < p.remaining(); at += FrameChannel.PAGE_RECORD) {
            long offset = p.getLong(p.position() + at);
            if (offset < 0 || offset % 4096 != 0 || offset > ram.byteSize() - 4096) {
                throw new MigrationException(String.format("migration stream: page at offset 0x%x is outside the"
                        + " %d MiB of guest RAM or not page-aligned", offset, ram.byteSize() >> 20));
            }
            MemorySegment.copy(data, at + 8, ram, offset, 4096);
            pages++;
        }
    }

    private MachineState parseState(ByteBuffer p) {
        try {
            MachineState s = Json.MAPPER.readValue(bytes(p), MachineState.class);
            if (s == null || s.vm() == null || s.vcpus() == null || s.devices() == null
                    || s.vcpus().size() != description.machine().cpus()) {
                throw new MigrationException("migration stream: the STATE frame does not hold a whole machine");
            }
            return s;
        } catch (IOException | IllegalArgumentException e) {
            throw new MigrationException("migration stream: the STATE frame is malformed: "
                    + (e instanceof JacksonException j ? j.getOriginalMessage() : e.getMessage()), e);
        }
    }

    /** @throws IllegalStateException before {@link #loadRam} has read the STATE frame */
    @Override
    public MachineState state() {
        if (state == null) {
            throw new IllegalStateException("the migration's state comes after its RAM: loadRam first");
        }
        return state;
    }

    /** Tells the source the machine runs here (RUNNING): it ends. A source gone by now is logged, not fatal. */
    @Override
    public void running() {
        try {
            channel.write(FrameChannel.RUNNING);
            log.info("migration from {} done: the VM runs here", socket);
        } catch (MigrationException e) {
            log.warn("the VM runs here, but the source did not take RUNNING: {}", e.getMessage());
        }
    }

    /** Tells the source why this destination gives up (ERROR, best effort): the source's VM runs on. */
    public void fail(String message) {
        tryFail(channel, message);
    }

    private static void tryFail(FrameChannel c, String message) {
        byte[] b = message.getBytes(StandardCharsets.UTF_8);
        try {
            c.write(FrameChannel.ERROR, ByteBuffer.wrap(b, 0, (int) Math.min(b.length, FrameChannel.maxLength(FrameChannel.ERROR))));
        } catch (RuntimeException e) {
            log.debug("could not tell the source: {}", e.getMessage());
        }
    }

    private static byte[] bytes(ByteBuffer b) {
        byte[] a = new byte[b.remaining()];
        b.get(a);
        return a;
    }

    private static void closeQuietly(java.io.Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // the stream is given up on already
        }
    }

    @Override
    public void close() {
        closeQuietly(channel);
    }
}
