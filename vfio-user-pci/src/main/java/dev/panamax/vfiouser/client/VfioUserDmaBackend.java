package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfiouser.protocol.DeviceResetCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaReadCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.DmaWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedFds;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.VfioUserTransportException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import static dev.panamax.vfiouser.client.VfioUserProxy.TRACE;

/**
 * The vfio-user client's IOMMU backend (spec, "VFIO_USER_DMA_MAP", "VFIO_USER_DMA_UNMAP", "VFIO_USER_DMA_READ",
 * "VFIO_USER_DMA_WRITE"; QEMU: {@code hw/vfio-user/container.c}): a mapped {@link RamRegion} becomes a DMA_MAP range
 * whose DMA address is the IOVA, carrying the region's fd (SCM_RIGHTS) and the region's offset in it so that the
 * server can mmap guest RAM. The ranges are also kept here, to serve the server's DMA_READ / DMA_WRITE from the
 * regions' host mappings; a second platform thread answers them, so that the receive thread never waits to send.
 *
 * <p>Without fds ({@link VfioUserClient.Options#dmaFds()} false, a region with fd -1, or a server with
 * {@code max_msg_fds} 0) the server cannot mmap and must use DMA_READ / DMA_WRITE messages (the "forced message
 * path"). DMA_MAP's flags are {@link DmaBackend#READ} and {@link DmaBackend#WRITE}, the same bits as the spec's
 * readable (bit 0) and writeable (bit 1).
 */
public final class VfioUserDmaBackend implements DmaBackend {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserDmaBackend.class);
    private static final ReceivedMessage STOP = new ReceivedMessage(
            VfioUserHeader.reply(0, VfioUserCommand.DMA_READ, 0), new byte[0], new ReceivedFds(new int[0]));

    /** One DMA_MAP range as this side sees it: guest RAM at {@code host}. */
    private record DmaRange(long iova, long size, int flags, MemorySegment host) {
        long end() {
            return iova + size;
        }
    }

    private final VfioUserProxy proxy;
    private final String name;
    private final boolean passFds;
    private final TreeMap<Long, DmaRange> dma = new TreeMap<>();
    private final ReentrantReadWriteLock dmaLock = new ReentrantReadWriteLock();
    private final AtomicLong served = new AtomicLong();
    /** Serves the server's DMA_READ / DMA_WRITE, so that the receive thread never waits to send. */
    private final Thread dmaServer;
    private final LinkedBlockingQueue<ReceivedMessage> requests = new LinkedBlockingQueue<>();
    /** Payload bytes of the requests in {@link #requests}. */
    private final AtomicLong queuedBytes = new AtomicLong();
    /**
     * Most server requests waiting to be answered ...; a server past them does not read its socket (it is not
     * waiting for our replies), and the device is broken.
     */
    static final int MAX_QUEUED_REQUESTS = 64;
    /** ... and most payload bytes they hold. */
    static final long MAX_QUEUED_BYTES = 16L << 20;

    VfioUserDmaBackend(VfioUserProxy proxy, boolean passFds) {
        this.proxy = proxy;
        this.name = proxy.name();
        this.passFds = passFds;
        this.dmaServer = Thread.ofPlatform().name("vfio-user-client-dma " + name).daemon().unstarted(this::dmaLoop);
    }

    /** @return whether DMA_MAP carries the region's fd (false: the forced message path) */
    public boolean passesFds() {
        return passFds;
    }

    /**
     * {@code VFIO_USER_DMA_MAP} of {@code region} at DMA address {@code iova}, with the region's fd at its
     * {@code fdOffset} unless this backend passes no fds or the region has none; the range is also kept here to
     * serve the server's DMA_READ / DMA_WRITE. Dropped on a broken device.
     *
     * @param flags {@link DmaBackend#READ} | {@link DmaBackend#WRITE}
     * @throws IllegalArgumentException when the range is not aligned to the server's smallest page size, overlaps a
     *                                  mapped one, or exceeds its {@code max_dma_maps}
     * @throws VfioUserClientException  when the server refuses
     */
    @Override
    public void dmaMap(long iova, RamRegion region, int flags) {
        if (passFds && region.fd() < 0) {
            // Not refused: the spec's message path serves it, only slower (a machine's config refuses anonymous
            // guest RAM with a vfio-user device before it gets here).
            LOG.warn("vfio-user {}: {} has no fd (anonymous memory): the server cannot mmap it and must reach it by"
                    + " DMA_READ / DMA_WRITE messages", name, region.name());
        }
        map(iova, region.size(), region.host(), passFds ? region.fd() : -1, region.fdOffset(), flags);
    }

    private void map(long iova, long size, MemorySegment host, int fd, long fdOffset, int flags) {
        long page = Long.lowestOneBit(proxy.server().effectivePgsizes());
        String what = String.format("DMA_MAP 0x%x+0x%x%s", iova, size, fd >= 0 ? " with fd" : "");
        if (size <= 0 || host.byteSize() != size || ((iova | size) & (page - 1)) != 0) {
            throw new IllegalArgumentException("vfio-user " + name + ": " + what + " is not aligned to the server's page size " + page);
        }
        if (fd >= 0 && proxy.server().effectiveMaxMsgFds() == 0) {
            fd = -1; // the server takes no fds: it reaches this memory by DMA_READ / DMA_WRITE
        }
        dmaLock.writeLock().lock();
        try {
            Map.Entry<Long, DmaRange> below = dma.floorEntry(iova + size - 1);
            if (below != null && below.getValue().end() > iova) {
                throw new IllegalArgumentException("vfio-user " + name + ": " + what + " overlaps a mapped range at 0x"
                        + Long.toHexString(below.getKey()));
            }
            if (dma.size() >= proxy.server().effectiveMaxDmaMaps()) {
                throw new IllegalArgumentException("vfio-user " + name + ": " + what + ": the server's max_dma_maps is "
                        + proxy.server().effectiveMaxDmaMaps());
            }
            // Known here before the server hears of it: it may DMA as soon as it has the map.
            dma.put(iova, new DmaRange(iova, size, flags, host));
        } finally {
            dmaLock.writeLock().unlock();
        }
        ByteBuf out = Unpooled.buffer();
        DmaMapCodec.encode(new DmaMapCodec.Request(flags, fd >= 0 ? fdOffset : 0, iova, size), out);
        boolean ok = false;
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DMA_MAP, out, fd >= 0 ? new int[]{fd} : new int[0], what)) {
            proxy.decode(m, what, b -> {
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

    /** {@code VFIO_USER_DMA_UNMAP}; after it returns the server no longer reaches the range (unless it misbehaves). */
    @Override
    public void dmaUnmap(long iova, long size) {
        String what = String.format("DMA_UNMAP 0x%x+0x%x", iova, size);
        ByteBuf out = Unpooled.buffer();
        DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(iova, size), out);
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DMA_UNMAP, out, what)) {
            DmaUnmapCodec.Unmap u = proxy.decode(m, what, DmaUnmapCodec::decode);
            if (u.address() != iova || u.size() != size) {
                throw proxy.breakNow(what + ": the reply names 0x" + Long.toHexString(u.address()) + "+0x" + Long.toHexString(u.size()));
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
    int count() {
        dmaLock.readLock().lock();
        try {
            return dma.size();
        } finally {
            dmaLock.readLock().unlock();
        }
    }

    /** @return DMA_READ / DMA_WRITE requests of the server answered (with data or an error) */
    long requestsServed() {
        return served.get();
    }

    // ---------------------------------------------------------------- serving the server's DMA_READ / DMA_WRITE

    /** Starts the thread that serves the server's requests. */
    void start() {
        dmaServer.start();
    }

    /**
     * Takes a request of the server (from the receive thread): it is served, in order, on this backend's thread.
     *
     * @throws VfioUserDeviceBrokenException (the device marked broken, {@code m} closed) when
     *                                       {@link #MAX_QUEUED_REQUESTS} or {@link #MAX_QUEUED_BYTES} already wait
     */
    void received(ReceivedMessage m) {
        long bytes = queuedBytes.addAndGet(m.payload().length);
        if (requests.size() >= MAX_QUEUED_REQUESTS || bytes > MAX_QUEUED_BYTES) {
            queuedBytes.addAndGet(-m.payload().length);
            m.close();
            throw proxy.breakNow("the server sent more than " + MAX_QUEUED_REQUESTS + " DMA requests or "
                    + (MAX_QUEUED_BYTES >> 20) + " MiB that wait for an answer: it does not read its socket");
        }
        requests.add(m);
    }

    /** Ends the serving thread (after the receive thread ended) and drops what is left unserved. */
    void stop() {
        requests.add(STOP);
        try {
            if (Thread.currentThread() != dmaServer && dmaServer.isAlive()) {
                dmaServer.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        for (ReceivedMessage m; (m = requests.poll()) != null; ) {
            m.close();
        }
    }

    private void dmaLoop() {
        try {
            while (true) {
                ReceivedMessage m = requests.take();
                if (m == STOP) {
                    return;
                }
                queuedBytes.addAndGet(-m.payload().length);
                try (m) {
                    if (proxy.usable()) {
                        serve(m);
                    }
                } catch (VfioUserTransportException e) {
                    proxy.markBroken("answering " + m.header().command() + " " + m.header().messageId() + ": " + e.getMessage());
                } catch (Throwable e) {
                    // Anything else, an Error included (a SIGBUS on guest RAM as InternalError, OutOfMemoryError): the
                    // device is broken, and this thread goes on draining the queue (issue 15, defect 9).
                    proxy.markBroken("serving " + m.header().command() + " " + m.header().messageId() + ": " + e);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Serves a DMA_READ or DMA_WRITE from the server (spec, "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE"): the range
     * must lie inside one mapped range with the right protection, else the reply is EFAULT.
     */
    private void serve(ReceivedMessage m) {
        VfioUserHeader h = m.header();
        long maxData = proxy.options().maxDataXferSize();
        ByteBuf out = Unpooled.buffer();
        int errno = 0;
        long dmaAddress = 0, dmaCount = 0; // for the trace
        try {
            if (h.command() == VfioUserCommand.DMA_READ) {
                DmaReadCodec.Request r = DmaReadCodec.decodeRequest(m.payloadBuffer(), maxData);
                dmaAddress = r.address();
                dmaCount = r.count();
                byte[] data = new byte[(int) r.count()];
                errno = copy(r.address(), MemorySegment.ofArray(data), false);
                if (errno == 0) {
                    DmaReadCodec.encode(new DmaReadCodec.Reply(r.address(), data), out);
                }
            } else if (h.command() == VfioUserCommand.DMA_WRITE) {
                DmaWriteCodec.Request r = DmaWriteCodec.decodeRequest(m.payloadBuffer(), maxData);
                dmaAddress = r.address();
                dmaCount = r.data().length;
                errno = copy(r.address(), MemorySegment.ofArray(r.data()), true);
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
        served.incrementAndGet();
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
            proxy.sendError(h, errno);
        } else {
            proxy.sendReply(h, out);
        }
    }

    /** Copies between guest RAM at {@code iova} and {@code buffer}. @return 0, or EFAULT when not mapped so */
    private int copy(long iova, MemorySegment buffer, boolean write) {
        long n = buffer.byteSize();
        dmaLock.readLock().lock();
        try {
            Map.Entry<Long, DmaRange> e = dma.floorEntry(iova);
            DmaRange r = e == null ? null : e.getValue();
            int need = write ? WRITE : READ;
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
}
