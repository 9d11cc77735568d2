package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.VfioDeviceInfo;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.VfioIrqInfo;
import dev.panamax.vfio.VfioIrqSet;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VersionCodec.Capabilities;
import dev.panamax.vfiouser.transport.UnixSocket;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * A vfio-user client: a PCI device served by another process over a UNIX socket (spec: vfio-user,
 * "Protocol Specification"), offered to the VMM as a {@link VfioDeviceIo}, the same seam a kernel VFIO device
 * ({@code KernelVfioDevice}) fills. Usage, for the machine that wires {@code --device vfio-user-pci,socket=PATH}:
 * <pre>{@code
 *   VfioUserClient device = VfioUserClient.connect(socket, VfioUserClient.Options.defaults()
 *           .withOnBroken((client, why) -> { if (failStop) machine.stop(); }));
 *   DmaMemoryListener dma = new DmaMemoryListener(device.dma());
 *   guestAddressSpace.addListener(dma);                             // DMA_MAP of guest RAM
 *   VfioPciFunction function = new VfioPciFunction(device, ...);    // the PCI model, as for kernel VFIO
 *   ...
 *   guestAddressSpace.removeListener(dma); device.close();
 * }</pre>
 *
 * <p>The client owns three parts, as QEMU splits {@code hw/vfio-user/}: the {@link VfioUserProxy} (the connection:
 * message IDs, replies, the receive thread, deadlines, the broken state, posted-write permits; {@code proxy.c}),
 * the device I/O ops ({@link VfioUserDeviceIo}, which the {@link VfioDeviceIo} calls here go to, posted writes
 * included; {@code device.c}) and the DMA backend ({@link #dma()}, {@link VfioUserDmaBackend}: DMA_MAP/UNMAP and
 * the server's DMA_READ/DMA_WRITE; {@code container.c}).
 *
 * <p>Threads: callers (vCPUs, the machine) send requests and wait for their replies; one platform thread receives
 * every message, hands replies to their waiters by message ID and checks the timeouts; the server's DMA_READ /
 * DMA_WRITE go to a second platform thread that answers them from guest RAM while requests are outstanding. Every
 * request has a timeout ({@link Options#requestTimeout()}). Callers may be many threads; none may be in a call when
 * {@link #close} runs.
 *
 * <p>Broken device: when the server closes the connection, does not answer in time, or breaks the protocol
 * (a reply nobody asked for, a reply of the wrong size or command, too many fds, bytes that are no message),
 * the client logs one ERROR line naming the socket and what happened, and gives up on the server: region
 * reads return all-ones (every byte 0xFF, as a PCI read of an absent device), writes, SET_IRQS and reset are
 * dropped, info calls and {@code mmap} throw {@link VfioUserDeviceBrokenException}, and
 * {@link Options#onBroken()} is called once (from the thread that noticed) so that the VMM may stop the
 * machine if the user asked for that. Error replies (the server refusing one request) are no breakage: the call
 * throws {@link VfioUserClientException} with the errno.
 */
public final class VfioUserClient implements VfioDeviceIo {
    /**
     * The most fds we accept in one message, our {@code max_msg_fds}: a region info reply carries one, a
     * GET_REGION_IO_FDS reply one per ioeventfd (as many as the project's server offers for one region).
     */
    public static final int MAX_MSG_FDS = 16;

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
     * @param dmaFds          DMA_MAP passes guest RAM's fds; false: every range is mapped without fd, so that the
     *                        server reaches guest RAM by DMA_READ / DMA_WRITE messages only (the forced message path)
     */
    public record Options(Duration requestTimeout, boolean postedWrites, int maxPostedWrites, long maxDataXferSize,
                          BrokenListener onBroken, boolean dmaFds) {
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

        /** Timeout 5 s, posted writes on (at most 64 in flight), 1 MiB transfers, no listener, DMA with fds. */
        public static Options defaults() {
            return new Options(Duration.ofSeconds(5), true, 64, VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE, null, true);
        }

        public Options withRequestTimeout(Duration t) {
            return new Options(t, postedWrites, maxPostedWrites, maxDataXferSize, onBroken, dmaFds);
        }

        public Options withPostedWrites(boolean on) {
            return new Options(requestTimeout, on, maxPostedWrites, maxDataXferSize, onBroken, dmaFds);
        }

        public Options withMaxPostedWrites(int n) {
            return new Options(requestTimeout, postedWrites, n, maxDataXferSize, onBroken, dmaFds);
        }

        public Options withMaxDataXferSize(long bytes) {
            return new Options(requestTimeout, postedWrites, maxPostedWrites, bytes, onBroken, dmaFds);
        }

        public Options withOnBroken(BrokenListener l) {
            return new Options(requestTimeout, postedWrites, maxPostedWrites, maxDataXferSize, l, dmaFds);
        }

        public Options withDmaFds(boolean on) {
            return new Options(requestTimeout, postedWrites, maxPostedWrites, maxDataXferSize, onBroken, on);
        }
    }

    /** Told once when the device breaks. */
    @FunctionalInterface
    public interface BrokenListener {
        /** @param reason what happened, one line */
        void broken(VfioUserClient client, String reason);
    }

    private final VfioUserProxy proxy;
    private final VfioUserDeviceIo device;
    private final VfioUserDmaBackend dma;
    private final VfioUserMigration migration;
    private boolean closed;

    private VfioUserClient(UnixSocket socket, String name, Options options) {
        BrokenListener l = options.onBroken();
        this.proxy = new VfioUserProxy(socket, name, options, reason -> {
            if (l != null) {
                l.broken(this, reason);
            }
        });
        this.device = new VfioUserDeviceIo(proxy);
        this.dma = new VfioUserDmaBackend(proxy, options.dmaFds());
        this.migration = new VfioUserMigration(proxy);
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
        c.proxy.start(c.dma::received);
        c.dma.start();
        try {
            c.proxy.negotiate();
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    // ---------------------------------------------------------------- state

    @Override
    public String name() {
        return device.name();
    }

    /** @return the DMA backend of this connection: give it to a {@code DmaMemoryListener} to DMA_MAP guest RAM */
    public VfioUserDmaBackend dma() {
        return dma;
    }

    /** @return the migration v2 requests of this connection (DEVICE_FEATURE, MIG_DATA_READ / MIG_DATA_WRITE) */
    public VfioUserMigration migration() {
        return migration;
    }

    /** @return true once the device is broken (see the class comment) */
    public boolean isBroken() {
        return proxy.brokenReason() != null;
    }

    /** @return what broke the device, or null */
    public String brokenReason() {
        return proxy.brokenReason();
    }

    /** @return the server's VERSION capabilities (absent members: defaults) */
    public Capabilities serverCapabilities() {
        return proxy.server();
    }

    /** @return the largest data count of one REGION_READ / REGION_WRITE: min(ours, the server's max_data_xfer_size) */
    public long maxDataXferSize() {
        return proxy.maxXfer();
    }

    /** @return posted writes sent and not yet answered (see {@link VfioUserDeviceIo} on posted writes) */
    public int outstandingPostedWrites() {
        return proxy.outstandingPosted();
    }

    /** @return posted writes the server answered with an error, since connect */
    public long postedWriteErrors() {
        return proxy.postedErrors();
    }

    /**
     * Waits until every posted write is answered.
     *
     * @throws VfioUserClientException when a posted write failed since the last flush (the message names the last one)
     */
    public void flushPostedWrites() {
        proxy.flushPosted();
    }

    // ---------------------------------------------------------------- VfioDeviceIo: the device I/O ops

    @Override
    public VfioDeviceInfo deviceInfo() {
        return device.deviceInfo();
    }

    /**
     * {@code VFIO_USER_DEVICE_GET_REGION_INFO} with its capability chain. For a mappable region the fd that comes
     * with the reply is kept (until {@link #close}) for {@link #mmap}.
     */
    @Override
    public VfioRegionInfo regionInfo(int index) {
        return device.regionInfo(index);
    }

    @Override
    public VfioIrqInfo irqInfo(int index) {
        return device.irqInfo(index);
    }

    /** {@code VFIO_USER_DEVICE_SET_IRQS}, split by the server's {@code max_msg_fds}; dropped on a broken device. */
    @Override
    public void setIrqs(VfioIrqSet set) {
        device.setIrqs(set);
    }

    /** {@code VFIO_USER_DEVICE_RESET}; dropped on a broken device. @throws VfioUserClientException when refused */
    @Override
    public void reset() {
        device.reset();
    }

    /** {@code VFIO_USER_REGION_READ}, split by {@link #maxDataXferSize()}; all-ones on a broken device. */
    @Override
    public void regionRead(int index, long offset, MemorySegment buffer) {
        device.regionRead(index, offset, buffer);
    }

    /** {@code VFIO_USER_REGION_WRITE}, split by {@link #maxDataXferSize()}; BAR writes may be posted. */
    @Override
    public void regionWrite(int index, long offset, MemorySegment buffer) {
        device.regionWrite(index, offset, buffer);
    }

    /**
     * {@code VFIO_USER_DEVICE_GET_REGION_IO_FDS} for region {@code index} of {@code regionSize} bytes: its usable
     * ioeventfds, each fd the caller's to close ({@link RegionIoFds#query}); empty when the server offers none.
     */
    List<RegionIoFds.IoEventFd> regionIoEventFds(int index, long regionSize) {
        return RegionIoFds.query(proxy, index, regionSize);
    }

    /** Maps part of a region from the fd its region info reply carried. Unmap with {@code Libc.munmap}. */
    @Override
    public MemorySegment mmap(int index, long offset, long size) {
        return device.mmap(index, offset, size);
    }

    /**
     * Disconnects: waits (up to the request timeout) for posted writes, shuts the socket down, ends the receive
     * and DMA threads, closes every fd the server gave and the socket. Idempotent. Mappings made with {@link #mmap}
     * stay valid until unmapped.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        proxy.shutdown();
        dma.stop();
        device.close();
        proxy.close();
    }

    @Override
    public String toString() {
        String broken = proxy.brokenReason();
        return "VfioUserClient(" + proxy.name() + (broken != null ? ", broken: " + broken : "") + ")";
    }
}
