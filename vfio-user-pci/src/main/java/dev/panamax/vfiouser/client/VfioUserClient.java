package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.VfioDeviceInfo;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.VfioIrqInfo;
import dev.panamax.vfio.VfioIrqSet;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceResetCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaReadCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.DmaWriteCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
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

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * A vfio-user client: a PCI device served by another process over a UNIX socket (spec: vfio-user,
 * "Protocol Specification"), offered to the VMM as a {@link VfioDeviceIo}, the same seam a kernel VFIO device
 * ({@code KernelVfioDevice}) fills. Usage, for the machine that wires {@code --device vfio-user-pci,socket=PATH}:
 * <pre>{@code
 *   VfioUserClient device = VfioUserClient.connect(socket, VfioUserClient.Options.defaults()
 *           .withOnBroken((client, why) -> { if (failStop) machine.stop(); }));
 *   guestAddressSpace.addListener(new VfioUserDmaListener(device));   // DMA_MAP of guest RAM
 *   VfioPciFunction function = new VfioPciFunction(device, ...);      // the PCI model, as for kernel VFIO
 *   ...
 *   guestAddressSpace.removeListener(listener); device.close();
 * }</pre>
 *
 * <p>Threads: callers (vCPUs, the machine) send requests and wait for their replies; one platform thread receives
 * every message, hands replies to their waiters by message ID and checks the timeouts; the server's DMA_READ /
 * DMA_WRITE go to a second platform thread that answers them from guest RAM (see {@link VfioUserDmaListener})
 * while requests are outstanding. The receive thread thus never waits to send: a server that stops reading cannot
 * stop the timeouts. Every request has a timeout ({@link Options#requestTimeout()}). Callers may be many threads;
 * none may be in a call when {@link #close} runs.
 *
 * <p>Posted writes: a {@link #regionWrite} to a BAR (region index 0..5) is sent without waiting for its reply
 * (QEMU does the same for MMIO). The server serves messages in order, so a later read or any other request
 * observes it. Its reply is still awaited by the receive thread: an error reply is logged and counted
 * ({@link #postedWriteErrors()}, {@link #flushPostedWrites()}), a missing reply breaks the device as any other.
 * At most {@link Options#maxPostedWrites()} are outstanding; the next writer waits. Configuration space writes
 * (region 7) and all other requests wait for their reply.
 *
 * <p>Broken device: when the server closes the connection, does not answer in time, or breaks the protocol
 * (a reply nobody asked for, a reply of the wrong size or command, too many fds, bytes that are no message),
 * the client logs one ERROR line naming the socket and what happened, and gives up on the server: region
 * reads return all-ones (every byte 0xFF, as a PCI read of an absent device), writes, SET_IRQS and reset are
 * dropped, info calls and {@code mmap} throw {@link VfioUserDeviceBrokenException}, and
 * {@link Options#onBroken()} is called once (from the thread that noticed) so that the VMM may stop the
 * machine if the user asked for that. Error replies (the server refusing one request) are no breakage: the call
 * throws {@link VfioUserClientException} with the errno.
 *
 * <p>Not supported: REGION_WRITE_MULTI (each write is one message), DEVICE_GET_REGION_IO_FDS, migration.
 */
public final class VfioUserClient implements VfioDeviceIo {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserClient.class);
    /** {@code --trace}: each message sent and received, one line, with its command, id and decoded fields. */
    private static final Logger TRACE = LoggerFactory.getLogger("dev.panamax.trace.vfiouser");
    /** {@code VFIO_PCI_BAR5_REGION_INDEX}: region indexes up to this one are BARs, whose writes may be posted. */
    public static final int LAST_BAR_REGION = 5;
    /** {@code VFIO_PCI_CONFIG_REGION_INDEX}. */
    public static final int CONFIG_REGION = 7;
    /** The most fds we accept in one message, our {@code max_msg_fds}: a region info reply carries one. */
    public static final int MAX_MSG_FDS = 1;
    /** Most bytes of a region info reply we ask for (capability chain included). */
    private static final long REGION_INFO_MAX = 64 * 1024;
    private static final long PAGE = 4096;

    /**
     * How the client behaves.
     *
     * @param requestTimeout  how long a request waits for its reply, and a started message for its end, before the
     *                        device counts as broken
     * @param postedWrites    send BAR writes without waiting for their replies
     * @param maxPostedWrites most posted writes in flight at once
     * @param maxDataXferSize our {@code max_data_xfer_size}: the most data bytes we accept in one message; region
     *                        accesses are split at the smaller of this and the server's
     * @param onBroken        called once when the device breaks (may be null)
     */
    public record Options(Duration requestTimeout, boolean postedWrites, int maxPostedWrites, long maxDataXferSize,
                          BrokenListener onBroken) {
        public Options {
            Objects.requireNonNull(requestTimeout, "requestTimeout");
            if (requestTimeout.isNegative() || requestTimeout.isZero()) {
                throw new IllegalArgumentException("vfio-user request timeout " + requestTimeout + " must be positive");
            }
            if (maxPostedWrites < 1) {
                throw new IllegalArgumentException("vfio-user max posted writes " + maxPostedWrites + " must be at least 1");
            }
            if (maxDataXferSize < 1 || maxDataXferSize > (1 << 24)) {
                throw new IllegalArgumentException("vfio-user max_data_xfer_size " + maxDataXferSize + " is not 1..16 MiB");
            }
        }

        /** Timeout 5 s, posted writes on (at most 64 in flight), 1 MiB transfers, no listener. */
        public static Options defaults() {
            return new Options(Duration.ofSeconds(5), true, 64, VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE, null);
        }

        public Options withRequestTimeout(Duration t) {
            return new Options(t, postedWrites, maxPostedWrites, maxDataXferSize, onBroken);
        }

        public Options withPostedWrites(boolean on) {
            return new Options(requestTimeout, on, maxPostedWrites, maxDataXferSize, onBroken);
        }

        public Options withMaxPostedWrites(int n) {
            return new Options(requestTimeout, postedWrites, n, maxDataXferSize, onBroken);
        }

        public Options withMaxDataXferSize(long bytes) {
            return new Options(requestTimeout, postedWrites, maxPostedWrites, bytes, onBroken);
        }

        public Options withOnBroken(BrokenListener l) {
            return new Options(requestTimeout, postedWrites, maxPostedWrites, maxDataXferSize, l);
        }
    }

    /** Told once when the device breaks. */
    @FunctionalInterface
    public interface BrokenListener {
        /** @param reason what happened, one line */
        void broken(VfioUserClient client, String reason);
    }

    /**
     * A request waiting for its reply; a posted write also remembers what it wrote, to check its reply.
     *
     * @param posted      a posted REGION_WRITE: the receive thread handles its reply
     * @param writeOffset for a posted write: region offset, bytes
     * @param writeRegion for a posted write: region index
     * @param writeCount  for a posted write: bytes
     */
    private record Pending(int id, VfioUserCommand command, String what, long deadline, boolean posted,
                           long writeOffset, int writeRegion, int writeCount, CompletableFuture<ReceivedMessage> reply) {
    }

    /** One DMA_MAP range as this side sees it: guest RAM at {@code host}. */
    private record DmaRange(long iova, long size, int flags, MemorySegment host) {
        long end() {
            return iova + size;
        }
    }

    private final String name;
    private final Options options;
    private final MessageChannel channel;
    private final Thread receiver;
    /** Serves the server's DMA_READ / DMA_WRITE, so that the receive thread never waits to send. */
    private final Thread dmaServer;
    private final java.util.concurrent.LinkedBlockingQueue<ReceivedMessage> dmaRequests = new java.util.concurrent.LinkedBlockingQueue<>();
    private static final ReceivedMessage STOP = new ReceivedMessage(
            VfioUserHeader.reply(0, VfioUserCommand.DMA_READ, 0), new byte[0], new dev.panamax.vfiouser.transport.ReceivedFds(new int[0]));
    private final ConcurrentHashMap<Integer, Pending> pending = new ConcurrentHashMap<>();
    private final AtomicInteger nextId = new AtomicInteger();
    private final Semaphore postedPermits;
    private final AtomicLong postedErrors = new AtomicLong();
    private final AtomicLong postedErrorsReported = new AtomicLong();
    private volatile String lastPostedError;
    private final Map<Integer, Integer> regionFds = new ConcurrentHashMap<>();
    private final Map<Integer, VfioRegionInfo> regionInfos = new ConcurrentHashMap<>();
    private final TreeMap<Long, DmaRange> dma = new TreeMap<>();
    private final ReentrantReadWriteLock dmaLock = new ReentrantReadWriteLock();
    private final AtomicLong dmaServed = new AtomicLong();
    private final Object brokenLock = new Object();
    private volatile String broken;
    private volatile boolean closing;
    private boolean closed;
    private volatile Capabilities server = Capabilities.NONE;
    private volatile long maxXfer;

    private VfioUserClient(UnixSocket socket, String name, Options options) {
        this.name = name;
        this.options = options;
        this.channel = new MessageChannel(socket, MAX_MSG_FDS,
                VfioUserHeader.SIZE + 16 + Math.max(options.maxDataXferSize(), REGION_INFO_MAX));
        this.postedPermits = new Semaphore(options.maxPostedWrites());
        this.maxXfer = Math.min(options.maxDataXferSize(), VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE);
        this.receiver = Thread.ofPlatform().name("vfio-user-client " + name).daemon().unstarted(this::receiveLoop);
        this.dmaServer = Thread.ofPlatform().name("vfio-user-client-dma " + name).daemon().unstarted(this::dmaLoop);
    }

    /**
     * Connects to the vfio-user server listening on {@code socket} and negotiates VERSION (spec,
     * "VFIO_USER_VERSION"): we offer {@code max_msg_fds} {@value #MAX_MSG_FDS}, our {@code max_data_xfer_size},
     * no migration; we honour the server's {@code max_msg_fds}, {@code max_data_xfer_size}, {@code pgsizes} and
     * {@code max_dma_maps}.
     *
     * @throws LinuxException                 when the socket cannot be connected (ENOENT, ECONNREFUSED)
     * @throws VfioUserDeviceBrokenException  when the server does not answer VERSION in time or breaks the protocol
     * @throws VfioUserClientException        when the server refuses our version
     */
    public static VfioUserClient connect(Path socket, Options options) {
        return over(UnixSocket.connect(socket), socket.toString(), options);
    }

    /**
     * As {@link #connect}, on a socket already connected (e.g. one end of {@link UnixSocket#pair()}).
     *
     * @param socket owned by the client from now on (closed on failure)
     * @param name   for messages, e.g. the socket path
     */
    public static VfioUserClient over(UnixSocket socket, String name, Options options) {
        VfioUserClient c = new VfioUserClient(socket, name, options);
        c.receiver.start();
        c.dmaServer.start();
        try {
            c.negotiate();
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private void negotiate() {
        ByteBuf out = Unpooled.buffer();
        VersionCodec.encode(new VersionCodec.Version(VersionCodec.MAJOR, VersionCodec.MINOR,
                new Capabilities(MAX_MSG_FDS, options.maxDataXferSize(), null, null, null, null)), out);
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

    @Override
    public String name() {
        return "vfio-user:" + name;
    }

    /** @return true once the device is broken (see the class comment) */
    public boolean isBroken() {
        return broken != null;
    }

    /** @return what broke the device, or null */
    public String brokenReason() {
        return broken;
    }

    /** @return the server's VERSION capabilities (absent members: defaults) */
    public Capabilities serverCapabilities() {
        return server;
    }

    /** @return the largest data count of one REGION_READ / REGION_WRITE: min(ours, the server's max_data_xfer_size) */
    public long maxDataXferSize() {
        return maxXfer;
    }

    /** @return posted writes sent and not yet answered */
    public int outstandingPostedWrites() {
        return options.maxPostedWrites() - postedPermits.availablePermits();
    }

    /** @return posted writes the server answered with an error, since connect */
    public long postedWriteErrors() {
        return postedErrors.get();
    }

    /**
     * Waits until every posted write is answered.
     *
     * @throws VfioUserClientException when a posted write failed since the last flush (the message names the last one)
     */
    public void flushPostedWrites() {
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

    // ---------------------------------------------------------------- info

    @Override
    public VfioDeviceInfo deviceInfo() {
        ByteBuf out = Unpooled.buffer();
        DeviceGetInfoCodec.encode(DeviceGetInfoCodec.DeviceInfo.request(), out);
        try (ReceivedMessage m = requestOk(VfioUserCommand.DEVICE_GET_INFO, out, "DEVICE_GET_INFO")) {
            DeviceGetInfoCodec.DeviceInfo d = decode(m, "DEVICE_GET_INFO", DeviceGetInfoCodec::decodeReply);
            if (d.numRegions() > 64 || d.numIrqs() > 64) {
                throw breakNow("DEVICE_GET_INFO reply claims " + d.numRegions() + " regions and " + d.numIrqs() + " IRQ indexes");
            }
            return new VfioDeviceInfo(d.flags(), (int) d.numRegions(), (int) d.numIrqs());
        }
    }

    /**
     * {@code VFIO_USER_DEVICE_GET_REGION_INFO} with its capability chain. For a mappable region the fd that comes
     * with the reply is kept (until {@link #close}) for {@link #mmap}.
     */
    @Override
    public VfioRegionInfo regionInfo(int index) {
        long argsz = 1024;
        for (int attempt = 0; ; attempt++) {
            ByteBuf out = Unpooled.buffer();
            DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(argsz, index), out);
            String what = "DEVICE_GET_REGION_INFO of region " + index;
            try (ReceivedMessage m = requestOk(VfioUserCommand.DEVICE_GET_REGION_INFO, out, what)) {
                DeviceGetRegionInfoCodec.Reply r = decode(m, what, DeviceGetRegionInfoCodec::decodeReply);
                DeviceGetRegionInfoCodec.RegionInfo info = r.info();
                if (info.index() != index) {
                    throw breakNow(what + ": the reply is for region " + info.index());
                }
                if (r.argsz() > argsz) {
                    if (attempt > 0 || r.argsz() > REGION_INFO_MAX) {
                        throw breakNow(what + ": the reply needs argsz " + r.argsz() + " after we offered " + argsz);
                    }
                    argsz = r.argsz();
                    continue; // ask again with room for the capabilities (spec, "Message sizes")
                }
                try {
                    DeviceGetRegionInfoCodec.checkFds(info, m.fds().count());
                } catch (VfioUserProtocolException e) {
                    throw breakNow(e.getMessage());
                }
                VfioRegionInfo result = convert(info);
                if (m.fds().count() == 1) {
                    Integer old = regionFds.put(index, m.fds().take(0));
                    if (old != null) {
                        Libc.close(old);
                    }
                }
                regionInfos.put(index, result);
                return result;
            }
        }
    }

    private static VfioRegionInfo convert(DeviceGetRegionInfoCodec.RegionInfo info) {
        List<VfioRegionInfo.Capability> caps = new ArrayList<>();
        for (DeviceGetRegionInfoCodec.Capability c : info.capabilities()) {
            switch (c) {
                case DeviceGetRegionInfoCodec.SparseMmap s -> caps.add(new VfioRegionInfo.SparseMmap(
                        s.areas().stream().map(a -> new VfioRegionInfo.Area(a.offset(), a.size())).toList()));
                case DeviceGetRegionInfoCodec.Unknown u when u.id() == dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE() ->
                        caps.add(new VfioRegionInfo.MsixMappable());
                default -> {
                    // VFIO_REGION_INFO_CAP_TYPE and unknown capabilities: nothing Panamax uses.
                }
            }
        }
        return new VfioRegionInfo((int) info.index(), info.flags(), info.size(), info.offset(), caps);
    }

    @Override
    public VfioIrqInfo irqInfo(int index) {
        ByteBuf out = Unpooled.buffer();
        DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(index), out);
        String what = "DEVICE_GET_IRQ_INFO of IRQ index " + index;
        try (ReceivedMessage m = requestOk(VfioUserCommand.DEVICE_GET_IRQ_INFO, out, what)) {
            DeviceGetIrqInfoCodec.IrqInfo i = decode(m, what, DeviceGetIrqInfoCodec::decodeReply);
            if (i.index() != index || i.count() > 2048) {
                throw breakNow(what + ": the reply is for index " + i.index() + " with " + i.count() + " vectors");
            }
            return new VfioIrqInfo(index, i.flags(), (int) i.count());
        }
    }

    // ---------------------------------------------------------------- interrupts, reset

    /**
     * {@code VFIO_USER_DEVICE_SET_IRQS}. Eventfds travel as SCM_RIGHTS, at most the server's {@code max_msg_fds} per
     * message: a longer set is sent as several requests with their own {@code start} and {@code count}, and a run
     * of -1 (de-assign) as a request without fds (as QEMU: "must send all valid FDs or all invalid FDs in single
     * msg"). Dropped on a broken device.
     *
     * @throws VfioUserClientException when the server refuses (then the requests before it took effect)
     */
    @Override
    public void setIrqs(VfioIrqSet set) {
        int data = set.flags() & dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_TYPE_MASK();
        if (data != dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()) {
            byte[] bools = new byte[set.bools().length];
            for (int i = 0; i < bools.length; i++) {
                bools[i] = (byte) (set.bools()[i] ? 1 : 0);
            }
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start(), set.count(), bools), new int[0]);
            return;
        }
        int[] fds = set.eventfds();
        if (fds.length == 0) {
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start(), 0, new byte[0]), fds);
            return;
        }
        int maxFds = server.effectiveMaxMsgFds();
        int i = 0;
        while (i < fds.length) {
            boolean valid = fds[i] >= 0;
            if (valid && maxFds == 0) {
                throw new VfioUserClientException(Errno.EINVAL, "vfio-user " + name + ": the server takes no fds (max_msg_fds 0), cannot pass eventfds");
            }
            int n = 1;
            while (i + n < fds.length && (fds[i + n] >= 0) == valid && (!valid || n < maxFds)) {
                n++;
            }
            int[] chunk = valid ? java.util.Arrays.copyOfRange(fds, i, i + n) : new int[0];
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start() + i, n, new byte[0]), chunk);
            i += n;
        }
    }

    private void sendIrqSet(DeviceSetIrqsCodec.IrqSet s, int[] fds) {
        ByteBuf out = Unpooled.buffer();
        DeviceSetIrqsCodec.encode(s, out);
        String what = "DEVICE_SET_IRQS " + dev.panamax.vfio.VfioNames.irqSet(s.flags(), (int) s.index(), (int) s.start(), (int) s.count());
        try (ReceivedMessage m = requestOk(VfioUserCommand.DEVICE_SET_IRQS, out, fds, what)) {
            decode(m, what, b -> {
                DeviceResetCodec.decodeEmpty(b, VfioUserCommand.DEVICE_SET_IRQS);
                return null;
            });
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: {} dropped, the device is broken", name, what);
        }
    }

    /** {@code VFIO_USER_DEVICE_RESET}; dropped on a broken device. @throws VfioUserClientException when refused */
    @Override
    public void reset() {
        try (ReceivedMessage m = requestOk(VfioUserCommand.DEVICE_RESET, Unpooled.EMPTY_BUFFER, "DEVICE_RESET")) {
            decode(m, "DEVICE_RESET", b -> {
                DeviceResetCodec.decodeEmpty(b, VfioUserCommand.DEVICE_RESET);
                return null;
            });
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: DEVICE_RESET dropped, the device is broken", name);
        }
    }

    // ---------------------------------------------------------------- regions

    /**
     * {@code VFIO_USER_REGION_READ}, split into pieces of at most {@link #maxDataXferSize()} bytes. On a broken
     * device (also one that breaks during this call) {@code buffer} is filled with 0xFF.
     *
     * @throws VfioUserClientException when the server refuses the read (error reply)
     */
    @Override
    public void regionRead(int index, long offset, MemorySegment buffer) {
        long done = 0;
        long total = buffer.byteSize();
        try {
            while (done < total) {
                int n = (int) Math.min(total - done, maxXfer);
                long at = offset + done;
                ByteBuf out = Unpooled.buffer(RegionReadCodec.SIZE);
                RegionReadCodec.encode(new RegionReadCodec.Request(at, index, n), out);
                String what = "REGION_READ of " + n + " bytes at 0x" + Long.toHexString(at) + " of region " + index;
                try (ReceivedMessage m = requestOk(VfioUserCommand.REGION_READ, out, what)) {
                    RegionReadCodec.Reply r = decode(m, what, b -> RegionReadCodec.decodeReply(b, maxXfer));
                    if (r.offset() != at || r.region() != index || r.data().length != n) {
                        throw breakNow(what + ": the reply has " + r.data().length + " bytes at 0x"
                                + Long.toHexString(r.offset()) + " of region " + r.region());
                    }
                    MemorySegment.copy(r.data(), 0, buffer, JAVA_BYTE, done, n);
                }
                done += n;
            }
        } catch (VfioUserDeviceBrokenException e) {
            buffer.fill((byte) 0xFF);
        }
    }

    /**
     * {@code VFIO_USER_REGION_WRITE}, split into pieces of at most {@link #maxDataXferSize()} bytes. BAR writes are
     * posted when {@link Options#postedWrites()} (see the class comment); other writes wait for the reply. Dropped
     * on a broken device.
     *
     * @throws VfioUserClientException when the server refuses a write that was not posted
     */
    @Override
    public void regionWrite(int index, long offset, MemorySegment buffer) {
        boolean posted = options.postedWrites() && index >= 0 && index <= LAST_BAR_REGION;
        long done = 0;
        long total = buffer.byteSize();
        try {
            while (done < total) {
                int n = (int) Math.min(total - done, maxXfer);
                long at = offset + done;
                ByteBuf out = Unpooled.buffer(RegionWriteCodec.SIZE + n);
                RegionWriteCodec.encode(at, index, buffer.asSlice(done, n), out); // the data's one copy before send
                String what = "REGION_WRITE of " + n + " bytes at 0x" + Long.toHexString(at) + " of region " + index;
                if (posted) {
                    post(out, what, at, index, n);
                } else {
                    try (ReceivedMessage m = requestOk(VfioUserCommand.REGION_WRITE, out, what)) {
                        checkWriteReply(m, what, at, index, n);
                    }
                }
                done += n;
            }
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: region {} write dropped, the device is broken", name, index);
        }
    }

    private void checkWriteReply(ReceivedMessage m, String what, long at, int index, int n) {
        RegionWriteCodec.Reply r = decode(m, what, RegionWriteCodec::decodeReply);
        if (r.offset() != at || r.region() != index || r.count() > n) {
            throw breakNow(what + ": the reply says " + r.count() + " bytes at 0x" + Long.toHexString(r.offset())
                    + " of region " + r.region());
        }
        if (r.count() < n) {
            throw new VfioUserClientException(Errno.EIO, "vfio-user " + name + ": " + what + ": the server wrote only " + r.count());
        }
    }

    /** Sends a REGION_WRITE whose reply the receive thread checks; waits while too many are in flight. */
    private void post(ByteBuf out, String what, long offset, int region, int count) {
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
        Pending p = register(VfioUserCommand.REGION_WRITE, what, true, offset, region, count);
        send(p, out, new int[0]);
    }

    /** The receive thread's handling of a posted write's reply. */
    private void postedReply(Pending p, ReceivedMessage m) {
        ByteBuf in = m.payloadBuffer();
        if (m.header().isError()) {
            postedErrors.incrementAndGet();
            lastPostedError = p.what + ": " + Errno.name(m.header().error());
            LOG.warn("vfio-user {}: posted {} failed: {}", name, p.what, Errno.name(m.header().error()));
            return;
        }
        RegionWriteCodec.Reply r;
        try {
            r = RegionWriteCodec.decodeReply(in);
        } catch (VfioUserProtocolException e) {
            throw breakNow("posted " + p.what + ": bad reply: " + e.getMessage());
        }
        if (r.offset() != p.writeOffset || r.region() != p.writeRegion || r.count() > p.writeCount) {
            throw breakNow("posted " + p.what + ": the reply says " + r.count() + " bytes at 0x"
                    + Long.toHexString(r.offset()) + " of region " + r.region());
        }
        if (r.count() < p.writeCount) {
            postedErrors.incrementAndGet();
            lastPostedError = p.what + ": the server wrote only " + r.count() + " bytes";
            LOG.warn("vfio-user {}: {}", name, lastPostedError);
        }
    }

    /**
     * Maps {@code [offset, offset + size)} of region {@code index} from the fd its region info reply carried, at the
     * region's {@code offset} in that fd (spec, "VFIO_USER_DEVICE_GET_REGION_INFO"). Unmap with {@code Libc.munmap}.
     *
     * @throws IllegalArgumentException when the region is not mappable there or the range is not page aligned
     * @throws VfioUserDeviceBrokenException on a broken device
     */
    @Override
    public MemorySegment mmap(int index, long offset, long size) {
        checkUsable();
        VfioRegionInfo info = regionInfos.get(index);
        if (info == null) {
            info = regionInfo(index);
        }
        Integer fd = regionFds.get(index);
        String what = String.format("vfio-user %s: mmap of region %d bytes 0x%x+0x%x", name, index, offset, size);
        if (fd == null) {
            throw new IllegalArgumentException(what + ": the region is not mappable (no fd)");
        }
        if (size <= 0 || offset < 0 || (offset | size) % PAGE != 0) {
            throw new IllegalArgumentException(what + ": not page aligned");
        }
        boolean inside = false;
        for (VfioRegionInfo.Area a : info.mmapAreas()) {
            inside |= offset >= a.offset() && offset + size <= a.offset() + a.size();
        }
        if (!inside) {
            throw new IllegalArgumentException(what + ": not inside an mmap area " + info.mmapAreas());
        }
        return Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, info.offset() + offset, what);
    }

    // ---------------------------------------------------------------- DMA (used by VfioUserDmaListener)

    /**
     * {@code VFIO_USER_DMA_MAP} of client memory {@code host} at DMA address {@code iova}; the range is also kept
     * here to serve the server's DMA_READ / DMA_WRITE. Dropped on a broken device.
     *
     * @param fd       the memfd to pass (SCM_RIGHTS), or -1 to map without fd (the server must use messages)
     * @param fdOffset byte offset of {@code host}'s first byte in {@code fd}; ignored without fd
     * @param flags    {@code VFIO_USER_F_DMA_REGION_READ} | {@code VFIO_USER_F_DMA_REGION_WRITE}
     * @throws IllegalArgumentException when the range is not aligned to the server's smallest page size, overlaps a
     *                                  mapped one, or exceeds its {@code max_dma_maps}
     * @throws VfioUserClientException  when the server refuses
     */
    void dmaMap(long iova, long size, MemorySegment host, int fd, long fdOffset, int flags) {
        long page = Long.lowestOneBit(server.effectivePgsizes());
        String what = String.format("DMA_MAP 0x%x+0x%x%s", iova, size, fd >= 0 ? " with fd" : "");
        if (size <= 0 || host.byteSize() != size || ((iova | size) & (page - 1)) != 0) {
            throw new IllegalArgumentException("vfio-user " + name + ": " + what + " is not aligned to the server's page size " + page);
        }
        if (fd >= 0 && server.effectiveMaxMsgFds() == 0) {
            fd = -1; // the server takes no fds: it reaches this memory by DMA_READ / DMA_WRITE
        }
        dmaLock.writeLock().lock();
        try {
            Map.Entry<Long, DmaRange> below = dma.floorEntry(iova + size - 1);
            if (below != null && below.getValue().end() > iova) {
                throw new IllegalArgumentException("vfio-user " + name + ": " + what + " overlaps a mapped range at 0x"
                        + Long.toHexString(below.getKey()));
            }
            if (dma.size() >= server.effectiveMaxDmaMaps()) {
                throw new IllegalArgumentException("vfio-user " + name + ": " + what + ": the server's max_dma_maps is "
                        + server.effectiveMaxDmaMaps());
            }
            // Known here before the server hears of it: it may DMA as soon as it has the map.
            dma.put(iova, new DmaRange(iova, size, flags, host));
        } finally {
            dmaLock.writeLock().unlock();
        }
        ByteBuf out = Unpooled.buffer();
        DmaMapCodec.encode(new DmaMapCodec.Request(flags, fd >= 0 ? fdOffset : 0, iova, size), out);
        boolean ok = false;
        try (ReceivedMessage m = requestOk(VfioUserCommand.DMA_MAP, out, fd >= 0 ? new int[]{fd} : new int[0], what)) {
            decode(m, what, b -> {
                DeviceResetCodec.decodeEmpty(b, VfioUserCommand.DMA_MAP);
                return null;
            });
            ok = true;
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: {} dropped, the device is broken", name, what);
            ok = true; // kept, so that the matching unmap finds it
        } finally {
            if (!ok) {
                removeDma(iova);
            }
        }
    }

    /** {@code VFIO_USER_DMA_UNMAP}; after it returns the server no longer reaches the range. */
    void dmaUnmap(long iova, long size) {
        String what = String.format("DMA_UNMAP 0x%x+0x%x", iova, size);
        ByteBuf out = Unpooled.buffer();
        DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(iova, size), out);
        try (ReceivedMessage m = requestOk(VfioUserCommand.DMA_UNMAP, out, what)) {
            DmaUnmapCodec.Unmap u = decode(m, what, DmaUnmapCodec::decode);
            if (u.address() != iova || u.size() != size) {
                throw breakNow(what + ": the reply names 0x" + Long.toHexString(u.address()) + "+0x" + Long.toHexString(u.size()));
            }
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: {} dropped, the device is broken", name, what);
        } catch (VfioUserClientException e) {
            // The range goes away on this side anyway: the guest RAM is about to be removed.
            LOG.warn("{}", e.getMessage());
        } finally {
            removeDma(iova);
        }
    }

    private void removeDma(long iova) {
        dmaLock.writeLock().lock();
        try {
            dma.remove(iova);
        } finally {
            dmaLock.writeLock().unlock();
        }
    }

    /** @return DMA ranges mapped */
    int dmaCount() {
        dmaLock.readLock().lock();
        try {
            return dma.size();
        } finally {
            dmaLock.readLock().unlock();
        }
    }

    /** @return DMA_READ / DMA_WRITE requests of the server answered (with data or an error) */
    long dmaRequestsServed() {
        return dmaServed.get();
    }

    /**
     * Serves a DMA_READ or DMA_WRITE from the server (spec, "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE"): the range
     * must lie inside one mapped range with the right protection, else the reply is EFAULT. On the receive thread.
     */
    private void serveDma(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        ByteBuf out = Unpooled.buffer();
        int errno = 0;
        long dmaAddress = 0, dmaCount = 0; // for the trace
        try {
            if (h.command() == VfioUserCommand.DMA_READ) {
                DmaReadCodec.Request r = DmaReadCodec.decodeRequest(m.payloadBuffer(), options.maxDataXferSize());
                dmaAddress = r.address();
                dmaCount = r.count();
                byte[] data = new byte[(int) r.count()];
                errno = dmaCopy(r.address(), MemorySegment.ofArray(data), false);
                if (errno == 0) {
                    DmaReadCodec.encode(new DmaReadCodec.Reply(r.address(), data), out);
                }
            } else if (h.command() == VfioUserCommand.DMA_WRITE) {
                DmaWriteCodec.Request r = DmaWriteCodec.decodeRequest(m.payloadBuffer(), options.maxDataXferSize());
                dmaAddress = r.address();
                dmaCount = r.data().length;
                errno = dmaCopy(r.address(), MemorySegment.ofArray(r.data()), true);
                if (errno == 0) {
                    DmaWriteCodec.encode(new DmaWriteCodec.Reply(r.address(), r.data().length), out);
                }
            } else {
                LOG.warn("vfio-user {}: the server sent {} {}, a client command; answered ENOSYS", name, h.command(), h.messageId());
                errno = Errno.ENOSYS;
            }
        } catch (VfioUserProtocolException e) {
            LOG.warn("vfio-user {}: bad {} {} from the server: {}", name, h.command(), h.messageId(), e.getMessage());
            errno = e.errno();
        }
        dmaServed.incrementAndGet();
        if (TRACE.isTraceEnabled()) {
            TRACE.trace("{} <- {} id {} from the server: address 0x{} count {}", name, h.command(), h.messageId(),
                    Long.toHexString(dmaAddress), dmaCount);
            TRACE.trace("{} -> {} id {} reply: {}", name, h.command(), h.messageId(),
                    h.noReply() ? "none asked" : errno != 0 ? "error " + Errno.name(errno) : out.readableBytes() + " bytes");
        }
        if (h.noReply()) {
            return;
        }
        if (errno != 0) {
            channel.sendError(h.messageId(), h.command(), errno);
        } else {
            channel.sendReply(h, out);
        }
    }

    /** Copies between guest RAM at {@code iova} and {@code buffer}. @return 0, or EFAULT when not mapped so */
    private int dmaCopy(long iova, MemorySegment buffer, boolean write) {
        long n = buffer.byteSize();
        dmaLock.readLock().lock();
        try {
            Map.Entry<Long, DmaRange> e = dma.floorEntry(iova);
            DmaRange r = e == null ? null : e.getValue();
            int need = write ? dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE() : dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ();
            long at = r == null ? 0 : iova - r.iova();
            if (r == null || at >= r.size() || n > r.size() - at || (r.flags() & need) == 0) {
                LOG.warn("vfio-user {}: server DMA {} of {} bytes at 0x{} is outside the {} DMA_MAP ranges; answered EFAULT",
                        name, write ? "write" : "read", n, Long.toHexString(iova), write ? "writable" : "readable");
                return Errno.EFAULT;
            }
            if (write) {
                MemorySegment.copy(buffer, 0, r.host(), at, n);
            } else {
                MemorySegment.copy(r.host(), at, buffer, 0, n);
            }
            return 0;
        } finally {
            dmaLock.readLock().unlock();
        }
    }

    // ---------------------------------------------------------------- requests and the receive thread

    private interface Decoder<T> {
        T decode(ByteBuf in);
    }

    /** Decodes a reply payload; a payload that breaks the protocol breaks the device. */
    private <T> T decode(ReceivedMessage m, String what, Decoder<T> decoder) {
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

    private ReceivedMessage requestOk(VfioUserCommand command, ByteBuf payload, String what) {
        return requestOk(command, payload, new int[0], what);
    }

    /** A request whose error reply becomes a {@link VfioUserClientException}. */
    private ReceivedMessage requestOk(VfioUserCommand command, ByteBuf payload, int[] fds, String what) {
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
    private ReceivedMessage request(VfioUserCommand command, ByteBuf payload, int[] fds, String what) {
        checkUsable();
        Pending p = register(command, what, false, 0, 0, 0);
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

    private Pending register(VfioUserCommand command, String what, boolean posted, long offset, int region, int count) {
        while (true) {
            int id = nextId.getAndIncrement() & 0xFFFF;
            Pending p = new Pending(id, command, what, System.nanoTime() + options.requestTimeout().toNanos(), posted,
                    offset, region, count, new CompletableFuture<>());
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
            TRACE.trace("{} -> {} id {}{}: {}{}", name, p.command, p.id, p.posted ? " (posted)" : "", p.what,
                    fds.length == 0 ? "" : ", fds " + java.util.Arrays.toString(fds));
        }
        try {
            channel.sendCommand(p.id, p.command, false, payload, fds);
        } catch (VfioUserTransportException e) {
            forget(p);
            throw breakNow("sending " + p.what + ": " + e.getMessage());
        }
    }

    /** Removes a pending request; a posted write gives its permit back. */
    private void forget(Pending p) {
        if (pending.remove(p.id, p)) {
            if (p.posted) {
                postedPermits.release();
            }
            p.reply.completeExceptionally(new VfioUserDeviceBrokenException(brokenMessage()));
        }
    }

    private void checkUsable() {
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
    private VfioUserDeviceBrokenException breakNow(String reason) {
        markBroken(reason);
        return new VfioUserDeviceBrokenException(brokenMessage());
    }

    private void markBroken(String reason) {
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
        BrokenListener l = options.onBroken();
        if (l != null) {
            try {
                l.broken(this, reason);
            } catch (RuntimeException e) {
                LOG.error("vfio-user {}: the broken-device listener failed", name, e);
            }
        }
    }

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
                    dmaRequests.add(m);
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
        } catch (RuntimeException e) {
            markBroken("receiving: " + e);
        }
    }

    private void dmaLoop() {
        try {
            while (true) {
                ReceivedMessage m = dmaRequests.take();
                if (m == STOP) {
                    return;
                }
                try (m) {
                    if (broken == null && !closing) {
                        serveDma(m);
                    }
                } catch (VfioUserTransportException e) {
                    markBroken("answering " + m.header().command() + " " + m.header().messageId() + ": " + e.getMessage());
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
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
        if (p.posted) {
            try (m) {
                postedReply(p, m);
            } finally {
                postedPermits.release();
            }
        } else if (!p.reply.complete(m)) {
            m.close(); // the waiter gave up
        }
    }

    private void checkDeadlines() {
        long now = System.nanoTime();
        for (Pending p : pending.values()) {
            if (now - p.deadline > 0) {
                throw breakNow("no reply to " + (p.posted ? "posted " : "") + p.what + " within "
                        + options.requestTimeout().toMillis() + " ms");
            }
        }
    }

    /**
     * Disconnects: waits (up to the request timeout) for posted writes, shuts the socket down, ends the receive
     * thread, closes every fd the server gave and the socket. Idempotent. Mappings made with {@link #mmap} stay
     * valid until unmapped.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        if (broken == null && Thread.currentThread() != receiver) {
            long deadline = System.nanoTime() + options.requestTimeout().toNanos();
            while (broken == null && outstandingPostedWrites() > 0 && System.nanoTime() - deadline < 0) {
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
        dmaRequests.add(STOP);
        try {
            if (Thread.currentThread() != receiver) {
                receiver.join();
            }
            if (Thread.currentThread() != dmaServer) {
                dmaServer.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (ReceivedMessage m; (m = dmaRequests.poll()) != null; ) {
            m.close();
        }
        for (Pending p : pending.values()) {
            forget(p);
        }
        for (Integer index : List.copyOf(regionFds.keySet())) {
            Integer fd = regionFds.remove(index);
            if (fd != null) {
                Libc.close(fd);
            }
        }
        channel.close();
    }

    @Override
    public String toString() {
        return "VfioUserClient(" + name + (broken != null ? ", broken: " + broken : "") + ")";
    }
}
