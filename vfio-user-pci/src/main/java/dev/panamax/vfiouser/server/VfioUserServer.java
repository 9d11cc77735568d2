package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.protocol.DeviceResetCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.RegionWriteMultiCodec;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VersionCodec.Capabilities;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.PeerCredentials;
import dev.panamax.vfiouser.transport.ReceiveTimeoutException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * A vfio-user server for one {@link VfioUserDevice} and one client (spec, "Protocol Specification"):
 * negotiates VERSION, then answers the client's requests until it goes away. Two threads: a reader
 * that takes every message off the socket (replies to this side's DMA_READ / DMA_WRITE go to the
 * device thread waiting for them) and a request thread that serves the client's commands in order
 * and calls the device's callbacks; a third, when the device declares ioeventfds, turns their signals into
 * region writes ({@link IoEventFdPoller}). Malformed or unknown requests get an error reply carrying the
 * errno, and the server goes on. When the client disconnects (or {@link #close} is called) every
 * eventfd and DMA mapping the client gave is closed and the device's disconnect callback runs.
 *
 * <p>Against a hostile client (issue 15): the reader stops reading while the queued requests reach
 * {@link #MAX_QUEUED_REQUESTS}, {@link #MAX_QUEUED_BYTES} or {@link #MAX_QUEUED_FDS}; a client that has not completed
 * VERSION within {@link Deadlines#version()} of connect, or leaves a started message unfinished for
 * {@link Deadlines#message()}, is dropped with one WARN line.
 */
public final class VfioUserServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserServer.class);
    /** Our VERSION capabilities: most fds we accept in one message. */
    public static final int MAX_MSG_FDS = 16;
    /** Most data bytes we accept in one REGION_READ/WRITE or DMA_READ reply. */
    public static final long MAX_DATA_XFER_SIZE = 1 << 20;
    /** DMA map page sizes we support: 4 KiB. */
    public static final long PGSIZES = 4096;
    /** Most DMA_MAP ranges at once. */
    public static final int MAX_DMA_MAPS = 1024;
    /** How long a device DMA waits for the client's DMA_READ / DMA_WRITE reply. */
    public static final Duration DMA_REPLY_TIMEOUT = Duration.ofSeconds(30);

    private final VfioUserDevice device;
    private final Deadlines deadlines;
    private final MessageChannel channel;
    private final DeviceDma dma;
    private final DeviceIrqs irqs;
    /** The device's ioeventfds and the thread that turns their signals into region writes. */
    private final IoEventFdPoller ioEventFds;
    private final DeviceMigration migration;
    /** Client requests between the reader and the request thread, bounded (backpressure). */
    private final RequestQueue requests = new RequestQueue();
    private final ConcurrentHashMap<Integer, CompletableFuture<ReceivedMessage>> pending = new ConcurrentHashMap<>();
    private final AtomicInteger nextId = new AtomicInteger();
    private final CountDownLatch disconnected = new CountDownLatch(1);
    private final Thread reader;
    private final Thread worker;
    private volatile Capabilities clientCapabilities;
    private volatile boolean gone;

    /**
     * A server on an already connected socket (e.g. one end of {@link UnixSocket#pair()}).
     * Call {@link #start()} to serve.
     *
     * @param socket connected, owned by the server from now on
     */
    public VfioUserServer(UnixSocket socket, VfioUserDevice device) {
        this(socket, device, Deadlines.DEFAULT);
    }

    /**
     * The server's deadlines for its client.
     *
     * @param version how long after connect the client has to complete VERSION, else it is dropped
     * @param message how long a message may take once its first byte came, else the client is dropped
     */
    public record Deadlines(Duration version, Duration message) {
        /**
         * 60 s to negotiate, 30 s per message: bounds on a client that stalls, not on a slow one. A client JVM under
         * emulation (nested TCG on a loaded 2-core host) was seen to take over 10 s from its connect to its VERSION.
         */
        public static final Deadlines DEFAULT = new Deadlines(Duration.ofSeconds(60), Duration.ofSeconds(30));
    }

    /**
     * A server on an already connected socket, with its {@code deadlines}. Call {@link #start()} to serve.
     *
     * @param socket connected, owned by the server from now on
     */
    public VfioUserServer(UnixSocket socket, VfioUserDevice device, Deadlines deadlines) {
        this.deadlines = deadlines;
        this.device = device;
        this.channel = new MessageChannel(socket, MAX_MSG_FDS, VfioUserHeader.SIZE + 16 + MAX_DATA_XFER_SIZE + 4096);
        this.irqs = new DeviceIrqs(device);
        this.dma = new DeviceDma(new DeviceDma.Requester() {
            @Override
            public ReceivedMessage request(VfioUserCommand command, ByteBuf payload) {
                return requestClient(command, payload);
            }

            @Override
            public long maxDataXferSize() {
                Capabilities c = clientCapabilities;
                return Math.min(MAX_DATA_XFER_SIZE, c == null ? VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE : c.effectiveMaxDataXferSize());
            }
        }, MAX_DMA_MAPS, device.dmaByMessages());
        this.migration = new DeviceMigration(device.migration().orElse(null), dma);
        this.ioEventFds = new IoEventFdPoller(device);
        this.reader = Thread.ofPlatform().name("vfio-user-reader").daemon().unstarted(this::readLoop);
        this.worker = Thread.ofPlatform().name("vfio-user-server").daemon().unstarted(this::serveLoop);
    }

    /**
     * Listens on {@code path} (mode 0600), accepts one client of our uid, removes the socket file and returns the
     * server (not started).
     *
     * @throws dev.panamax.vfiouser.transport.VfioUserTransportException when no client comes within {@code timeout} or the socket fails
     */
    public static VfioUserServer accept(Path path, VfioUserDevice device, Duration timeout) {
        try (UnixSocket listener = UnixSocket.listen(path, 1)) {
            UnixSocket socket = listener.accept(timeout);
            checkPeer(socket, PeerCredentials.NO_UID);
            return new VfioUserServer(socket, device);
        } finally {
            try {
                Files.deleteIfExists(path);
            } catch (java.io.IOException e) {
                LOG.warn("could not remove vfio-user socket {}: {}", path, e.toString());
            }
        }
    }

    /**
     * Checks an accepted client's credentials ({@code SO_PEERCRED}): our own uid, or {@code allowUid}.
     *
     * @param allowUid a uid allowed besides ours, or {@link PeerCredentials#NO_UID}
     * @throws dev.panamax.vfiouser.transport.VfioUserTransportException (the socket closed) for another uid
     */
    public static void checkPeer(UnixSocket socket, int allowUid) {
        PeerCredentials peer;
        try {
            peer = socket.peerCredentials();
        } catch (RuntimeException e) {
            socket.close();
            throw new dev.panamax.vfiouser.transport.VfioUserTransportException("vfio-user client refused: " + e.getMessage());
        }
        if (!peer.allowedBy(allowUid)) {
            socket.close();
            throw new dev.panamax.vfiouser.transport.VfioUserTransportException("vfio-user client refused: pid " + peer.pid()
                    + " runs as uid " + peer.uid() + ", not ours" + (allowUid != PeerCredentials.NO_UID ? " nor " + allowUid : ""));
        }
    }

    /** Starts the reader and request threads, and the ioeventfd thread when the device declares ioeventfds. */
    public void start() {
        ioEventFds.start(() -> channel.socket().shutdown()); // the reader and request threads wake and end
        reader.start();
        worker.start();
    }

    /** @return the device's DMA into client memory */
    public DeviceDma dma() {
        return dma;
    }

    /** @return the device's interrupts */
    public DeviceIrqs irqs() {
        return irqs;
    }

    /** @return the client's VERSION capabilities, or null before VERSION */
    public Capabilities clientCapabilities() {
        return clientCapabilities;
    }

    /** @return true once the client has gone and everything of it is closed */
    public boolean awaitDisconnect(Duration timeout) throws InterruptedException {
        return disconnected.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Disconnects the client (if still there), waits for the cleanup and the threads. */
    @Override
    public void close() {
        requests.close();
        channel.socket().shutdown();
        if (!reader.isAlive() && !worker.isAlive() && disconnected.getCount() > 0) {
            // Never started: clean up here.
            cleanup();
        }
        try {
            reader.join();
            worker.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- the reader thread ----

    private void readLoop() {
        long versionDeadline = System.nanoTime() + deadlines.version().toNanos();
        try {
            while (true) {
                ReceivedMessage m;
                try {
                    // Until VERSION is done the client has until its deadline; then it may idle, but a message it
                    // has started must end within the message deadline.
                    Duration wait = null;
                    if (clientCapabilities == null) {
                        long left = versionDeadline - System.nanoTime();
                        if (left <= 0) {
                            throw new ReceiveTimeoutException("no VERSION within " + deadlines.version().toMillis() + " ms of connect");
                        }
                        wait = Duration.ofNanos(left);
                    }
                    if (!channel.socket().poll(dev.panamax.vfiouser.transport.SocketLibc.POLLIN, wait)) {
                        continue;
                    }
                    m = channel.receive(deadlines.message());
                } catch (VfioUserProtocolException e) {
                    LOG.warn("vfio-user: bad message from the client: {}", e.getMessage());
                    if (e.messageId() >= 0) {
                        channel.sendErrorRaw(e.messageId(), e.command(), e.errno());
                    }
                    if (channel.brokenReason() != null) {
                        throw new dev.panamax.vfiouser.transport.VfioUserTransportException("vfio-user channel is broken: " + channel.brokenReason());
                    }
                    continue;
                }
                if (m.header().isReply()) {
                    CompletableFuture<ReceivedMessage> f = pending.remove(m.header().messageId());
                    if (f == null) {
                        LOG.warn("vfio-user: reply {} to {} that nobody waits for, dropped", m.header().messageId(), m.header().command());
                        m.close();
                    } else {
                        f.complete(m);
                    }
                } else {
                    requests.put(m);
                }
            }
        } catch (ReceiveTimeoutException e) {
            LOG.warn("vfio-user client dropped: {}", e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.info("vfio-user client gone: {}", e.getMessage());
        } catch (Throwable e) {
            // An Error (OutOfMemoryError receiving a message, ...): drop this client, keep the process (issue 15, defect 9).
            LOG.error("vfio-user client dropped: the reader failed: {}", e.toString());
        } finally {
            gone = true;
            for (var f : pending.values()) {
                f.completeExceptionally(new DmaException("the vfio-user client disconnected"));
            }
            pending.clear();
            requests.disconnect();
        }
    }

    private ReceivedMessage requestClient(VfioUserCommand command, ByteBuf payload) {
        int id = nextId.getAndIncrement() & 0xFFFF;
        CompletableFuture<ReceivedMessage> f = new CompletableFuture<>();
        pending.put(id, f);
        if (gone) {
            pending.remove(id);
            throw new DmaException(command + ": the vfio-user client disconnected");
        }
        try {
            channel.sendCommand(id, command, false, payload);
            return f.get(DMA_REPLY_TIMEOUT.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new DmaException(command + ": " + e.getCause().getMessage(), e.getCause());
        } catch (TimeoutException e) {
            throw new DmaException(command + ": no reply from the client within " + DMA_REPLY_TIMEOUT);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DmaException(command + ": interrupted waiting for the client");
        } catch (RuntimeException e) {
            throw new DmaException(command + ": " + e.getMessage(), e);
        } finally {
            pending.remove(id);
        }
    }

    // ---- the request thread ----

    private void serveLoop() {
        try {
            while (true) {
                ReceivedMessage next = requests.take();
                if (next == null) {
                    break;
                }
                try (ReceivedMessage m = next) {
                    handle(m);
                } finally {
                    requests.done(next);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Throwable e) {
            // An Error in the device model (OutOfMemoryError, StackOverflowError, a SIGBUS on a mapping as
            // InternalError): its state is unknown, so the client is dropped, with one line (issue 15, defect 9).
            // A RuntimeException does not get here: handle answers EIO and goes on.
            LOG.error("vfio-user client dropped: the request thread failed: {}", e.toString());
            channel.socket().shutdown(); // the reader wakes and ends too
        } finally {
            cleanup();
        }
    }

    private synchronized void cleanup() {
        if (disconnected.getCount() == 0) {
            return;
        }
        try {
            requests.closeAll();
            ioEventFds.close();
            irqs.closeAll();
            dma.unmapAll();
            channel.close();
            device.disconnected();
        } catch (Throwable e) {
            LOG.error("vfio-user: cleanup after disconnect failed: {}", e.toString());
        } finally {
            disconnected.countDown();
        }
    }

    private void handle(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        try {
            if (clientCapabilities == null && h.command() != VfioUserCommand.VERSION) {
                throw new VfioUserProtocolException(Errno.EINVAL, h.command() + " before VERSION");
            }
            ByteBuf in = m.payloadBuffer();
            ByteBuf out = Unpooled.buffer();
            int[] fds = new int[0];
            switch (h.command()) {
                case VERSION -> version(in, out);
                case DEVICE_GET_INFO -> {
                    DeviceGetInfoCodec.decodeRequest(in);
                    DeviceGetInfoCodec.encode(new DeviceGetInfoCodec.DeviceInfo(DeviceGetInfoCodec.SIZE,
                            vfio_h.VFIO_DEVICE_FLAGS_PCI() | vfio_h.VFIO_DEVICE_FLAGS_RESET(),
                            vfio_h.VFIO_PCI_NUM_REGIONS(), vfio_h.VFIO_PCI_NUM_IRQS()), out);
                }
                case DEVICE_GET_REGION_INFO -> fds = regionInfo(in, out);
                case DEVICE_GET_IRQ_INFO -> irqInfo(in, out);
                case DEVICE_SET_IRQS -> irqs.set(DeviceSetIrqsCodec.decode(in), m.fds());
                case REGION_READ -> {
                    RegionReadCodec.Request r = RegionReadCodec.decodeRequest(in, MAX_DATA_XFER_SIZE);
                    byte[] data = new byte[(int) r.count()];
                    access(r.region(), r.offset(), data, false);
                    RegionReadCodec.encode(new RegionReadCodec.Reply(r.offset(), r.region(), data), out);
                }
                case REGION_WRITE -> {
                    RegionWriteCodec.Request r = RegionWriteCodec.decodeRequest(in, MAX_DATA_XFER_SIZE);
                    access(r.region(), r.offset(), r.data(), true);
                    RegionWriteCodec.encode(new RegionWriteCodec.Reply(r.offset(), r.region(), r.data().length), out);
                }
                case REGION_WRITE_MULTI -> {
                    List<RegionWriteMultiCodec.Write> writes = RegionWriteMultiCodec.decodeRequest(in);
                    for (RegionWriteMultiCodec.Write w : writes) {
                        access(w.region(), w.offset(), w.data(), true);
                    }
                    RegionWriteMultiCodec.encodeReply(writes.size(), out);
                }
                case DEVICE_RESET -> {
                    DeviceResetCodec.decode(in);
                    device.reset();
                    migration.reset();
                }
                case DEVICE_FEATURE -> migration.feature(in, out, clientCapabilities.effectiveMaxDataXferSize());
                case MIG_DATA_READ -> migration.read(in, out, clientCapabilities.effectiveMaxDataXferSize());
                case MIG_DATA_WRITE -> migration.write(in, MAX_DATA_XFER_SIZE);
                case DMA_MAP -> dma.map(DmaMapCodec.decode(in), m.fds());
                case DMA_UNMAP -> {
                    DmaUnmapCodec.Unmap u = DmaUnmapCodec.decode(in);
                    dma.unmap(u);
                    // "The server responds with the original DMA entry in the request."
                    DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(DmaUnmapCodec.SIZE, 0, u.address(), u.size()), out);
                }
                case DEVICE_GET_REGION_IO_FDS -> fds = regionIoFds(in, out);
                case DMA_READ, DMA_WRITE -> throw new VfioUserProtocolException(Errno.EINVAL, h.command() + " is sent by the server, not the client");
            }
            if (!h.noReply()) {
                channel.sendReply(h, out, fds);
            }
        } catch (VfioUserProtocolException e) {
            LOG.warn("vfio-user {} {}: {}", h.command(), h.messageId(), e.getMessage());
            replyError(h, e.errno());
        } catch (dev.panamax.vfiouser.transport.VfioUserTransportException e) {
            LOG.info("vfio-user {} {}: reply not sent: {}", h.command(), h.messageId(), e.getMessage());
        } catch (RuntimeException e) {
            LOG.error("vfio-user {} {}: the device failed", h.command(), h.messageId(), e);
            replyError(h, Errno.EIO);
        }
    }

    private void replyError(VfioUserHeader h, int errno) {
        if (h.noReply()) {
            return;
        }
        try {
            channel.sendError(h.messageId(), h.command(), errno);
        } catch (RuntimeException e) {
            LOG.info("vfio-user {} {}: error reply not sent: {}", h.command(), h.messageId(), e.getMessage());
        }
    }

    /** VERSION (spec, "VFIO_USER_VERSION"): same major, minor at most the client's; our limits as capabilities. */
    private void version(ByteBuf in, ByteBuf out) {
        if (clientCapabilities != null) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION sent twice");
        }
        VersionCodec.Version v = VersionCodec.decode(in);
        if (v.major() != VersionCodec.MAJOR) {
            throw new VfioUserProtocolException(Errno.EOPNOTSUPP, "VERSION major " + v.major() + " is not " + VersionCodec.MAJOR);
        }
        Capabilities client = v.capabilities() == null ? Capabilities.NONE : v.capabilities();
        VersionCodec.checkLimits(client);
        int minor = Math.min(v.minor(), VersionCodec.MINOR);
        // write_multiple only when the client offered it: the reply's list is a subset of the proposal.
        Boolean writeMultiple = client.effectiveWriteMultiple() ? Boolean.TRUE : null;
        VersionCodec.encode(new VersionCodec.Version(VersionCodec.MAJOR, minor,
                new Capabilities(MAX_MSG_FDS, MAX_DATA_XFER_SIZE, PGSIZES, MAX_DMA_MAPS, migrationCapability(), writeMultiple)), out);
        channel.setPeerMaxFds(client.effectiveMaxMsgFds());
        clientCapabilities = client;
    }

    /** The VERSION {@code migration} capability, for a device that migrates: our page size, the default bitmap bound. */
    private VersionCodec.Migration migrationCapability() {
        return device.migration().isEmpty() ? null : new VersionCodec.Migration(PGSIZES, VersionCodec.DEFAULT_MAX_BITMAP_SIZE);
    }

    private int[] regionInfo(ByteBuf in, ByteBuf out) {
        DeviceGetRegionInfoCodec.Request r = DeviceGetRegionInfoCodec.decodeRequest(in);
        if (r.index() >= vfio_h.VFIO_PCI_NUM_REGIONS()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO index " + r.index() + " is not below " + vfio_h.VFIO_PCI_NUM_REGIONS());
        }
        VfioUserRegion region = device.region(r.index()).orElse(null);
        int index = (int) r.index();
        if (region == null) {
            // An absent region: size 0, no flags (as vfio-pci reports an unimplemented BAR).
            DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(index, 0, 0, 0, List.of()), r.argsz(), out);
            return new int[0];
        }
        int flags = (region.readable() ? vfio_h.VFIO_REGION_INFO_FLAG_READ() : 0)
                | (region.writable() ? vfio_h.VFIO_REGION_INFO_FLAG_WRITE() : 0);
        if (!region.mappable()) {
            DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(index, flags, region.size(), 0, List.of()), r.argsz(), out);
            return new int[0];
        }
        VfioRegionInfo info = new VfioRegionInfo(index, flags | vfio_h.VFIO_REGION_INFO_FLAG_MMAP(), region.size(),
                region.fileOffset(), List.of(new VfioRegionInfo.SparseMmap(region.mmapAreas())));
        DeviceGetRegionInfoCodec.encodeReply(info, r.argsz(), out);
        return new int[]{region.memFd().fd()};
    }

    /** DEVICE_GET_REGION_IO_FDS (spec, "VFIO_USER_DEVICE_GET_REGION_IO_FDS"): {@link IoEventFdPoller#reply}. */
    private int[] regionIoFds(ByteBuf in, ByteBuf out) {
        DeviceGetRegionIoFdsCodec.Request r = DeviceGetRegionIoFdsCodec.decodeRequest(in);
        if (device.region(r.index()).isEmpty()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_IO_FDS: region " + r.index() + " does not exist");
        }
        Capabilities c = clientCapabilities;
        return ioEventFds.reply(device, r, c == null ? 0 : c.effectiveMaxMsgFds(), out);
    }

    /** linux/kvm.h {@code KVM_IOEVENTFD_FLAG_DATAMATCH} (1 << kvm_ioeventfd_flag_nr_datamatch), the sub-region flag. */
    public static final int KVM_IOEVENTFD_FLAG_DATAMATCH = 1;

    private void irqInfo(ByteBuf in, ByteBuf out) {
        DeviceGetIrqInfoCodec.IrqInfo r = DeviceGetIrqInfoCodec.decodeRequest(in);
        if (r.index() >= vfio_h.VFIO_PCI_NUM_IRQS()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_IRQ_INFO index " + r.index() + " is not below " + vfio_h.VFIO_PCI_NUM_IRQS());
        }
        int flags = vfio_h.VFIO_IRQ_INFO_EVENTFD() | (r.index() == vfio_h.VFIO_PCI_INTX_IRQ_INDEX()
                ? vfio_h.VFIO_IRQ_INFO_MASKABLE() | vfio_h.VFIO_IRQ_INFO_AUTOMASKED()
                : vfio_h.VFIO_IRQ_INFO_NORESIZE());
        DeviceGetIrqInfoCodec.encode(new DeviceGetIrqInfoCodec.IrqInfo(DeviceGetIrqInfoCodec.SIZE, flags, r.index(),
                device.irqCount(r.index())), out);
    }

    /**
     * A client access to a region, checked against its size and flags.
     *
     * @throws VfioUserProtocolException EINVAL for a region the device lacks, a range outside it, or a forbidden direction
     */
    private void access(long index, long offset, byte[] data, boolean write) {
        VfioUserRegion region = device.region(index).orElseThrow(() -> new VfioUserProtocolException(Errno.EINVAL,
                "region " + index + " does not exist"));
        String what = (write ? "write" : "read") + " of " + data.length + " bytes at offset 0x" + Long.toHexString(offset) + " of region " + index;
        if (offset < 0 || offset > region.size() || data.length > region.size() - offset) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + " lies outside its " + region.size() + " bytes");
        }
        if (write ? !region.writable() : !region.readable()) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + ": the region is not " + (write ? "writable" : "readable"));
        }
        if (region.handler() != null) {
            if (write) {
                region.handler().write(offset, data);
            } else {
                region.handler().read(offset, data);
            }
            return;
        }
        MemorySegment backing = region.memFd().mapping().asSlice(region.fileOffset(), region.size());
        if (write) {
            MemorySegment.copy(data, 0, backing, JAVA_BYTE, offset, data.length);
        } else {
            MemorySegment.copy(backing, JAVA_BYTE, offset, data, 0, data.length);
        }
    }
}
