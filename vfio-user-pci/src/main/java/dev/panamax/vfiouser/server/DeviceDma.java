package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaLoggingReport;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaRange;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaReadCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.DmaWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedFds;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantReadWriteLock;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * The device's view of client memory: the ranges the client gave with DMA_MAP (spec,
 * "VFIO_USER_DMA_MAP"), by DMA address (IOVA, guest-physical for a VM). A range that came with an
 * fd is mmapped here and accessed directly; one without is reached by DMA_READ / DMA_WRITE
 * messages to the client, which the caller waits for. Any thread of the device may call
 * {@link #read} and {@link #write}, also the server's request thread from a region callback.
 * DMA addresses, sizes and offsets are u64 (spec, "VFIO_USER_DMA_MAP"): every comparison here is
 * unsigned and every range is handled by its last byte, so a range may end exactly at 2^64 and none
 * wraps past it.
 */
public final class DeviceDma {
    /** Sends a server -&gt; client command and waits for its reply (implemented by the server). */
    interface Requester {
        ReceivedMessage request(VfioUserCommand command, ByteBuf payload);

        /** The client's max_data_xfer_size: the largest DMA_READ/DMA_WRITE count. */
        long maxDataXferSize();
    }

    /**
     * One DMA_MAP range.
     *
     * @param iova    DMA address of its first byte
     * @param size    bytes
     * @param flags   VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE
     * @param mapping the mmap of the range (from its page-aligned file offset) or null for message DMA
     * @param data    the range's bytes, {@code mapping} itself, or null
     */
    private record Mapping(long iova, long size, int flags, MemorySegment mapping, MemorySegment data) {
        /** @return the DMA address of the last byte (no overflow: a range ends at 2^64 at the latest) */
        long last() {
            return iova + size - 1;
        }
    }

    /** The DMA_MAP granule: iova, size and offset must be multiples of it (our pgsizes capability). */
    private static final long PAGE = 4096;
    /** By DMA address, unsigned. */
    private final TreeMap<Long, Mapping> maps = new TreeMap<>(Long::compareUnsigned);
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Requester requester;
    private final int maxMaps;
    private final boolean ignoreFds;
    /** While DMA logging is on, the pages written; null when off. */
    private volatile DmaDirtyLog dirtyLog;

    DeviceDma(Requester requester, int maxMaps, boolean ignoreFds) {
        this.requester = requester;
        this.maxMaps = maxMaps;
        this.ignoreFds = ignoreFds;
    }

    /**
     * Copies {@code into.byteSize()} bytes of client memory from DMA address {@code iova}.
     *
     * @throws DmaException when part of the range is not mapped readable, or a DMA_READ failed
     */
    public void read(long iova, MemorySegment into) {
        access(iova, into, false);
    }

    /** Reads {@code into.length} bytes at {@code iova}. @throws DmaException as {@link #read(long, MemorySegment)} */
    public void read(long iova, byte[] into) {
        MemorySegment s = MemorySegment.ofArray(into);
        access(iova, s, false);
    }

    /**
     * Copies {@code from} into client memory at DMA address {@code iova}.
     *
     * @throws DmaException when part of the range is not mapped writable, or a DMA_WRITE failed
     */
    public void write(long iova, MemorySegment from) {
        access(iova, from, true);
    }

    /** Writes {@code from} at {@code iova}. @throws DmaException as {@link #write(long, MemorySegment)} */
    public void write(long iova, byte[] from) {
        access(iova, MemorySegment.ofArray(from), true);
    }

    /** @return true when DMA address {@code iova} lies in a DMA_MAP range */
    public boolean mapped(long iova) {
        lock.readLock().lock();
        try {
            return find(iova) != null;
        } finally {
            lock.readLock().unlock();
        }
    }

    private void access(long iova, MemorySegment buffer, boolean write) {
        long done = 0;
        long total = buffer.byteSize();
        if (total > 0 && Long.compareUnsigned(total - 1, -1L - iova) > 0) {
            throw new DmaException(String.format("DMA %s of %d bytes at 0x%x runs past 2^64",
                    write ? "write" : "read", total, iova));
        }
        while (done < total) {
            long at = iova + done;
            long n;
            Mapping m;
            lock.readLock().lock();
            try {
                m = find(at);
                if (m == null) {
                    throw new DmaException(String.format("DMA %s of %d bytes at 0x%x: address 0x%x is not in any DMA_MAP range",
                            write ? "write" : "read", total, iova, at));
                }
                int need = write ? dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE() : dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ();
                if ((m.flags & need) == 0) {
                    throw new DmaException(String.format("DMA %s at 0x%x: the DMA_MAP range 0x%x+0x%x is not %s",
                            write ? "write" : "read", at, m.iova, m.size, write ? "writeable" : "readable"));
                }
                long left = m.size - (at - m.iova); // unsigned, at least 1
                n = Long.compareUnsigned(total - done, left) <= 0 ? total - done : left;
                if (m.data != null) {
                    if (write) {
                        MemorySegment.copy(buffer, done, m.data, at - m.iova, n);
                    } else {
                        MemorySegment.copy(m.data, at - m.iova, buffer, done, n);
                    }
                }
            } finally {
                lock.readLock().unlock();
            }
            if (m.data == null) {
                long chunk = requester.maxDataXferSize();
                if (chunk <= 0) {
                    // Refused at VERSION already; never send empty messages in a loop.
                    throw new DmaException(String.format("DMA %s at 0x%x: the client's max_data_xfer_size is %d, no DMA message can carry data",
                            write ? "write" : "read", at, chunk));
                }
                n = Math.min(n, chunk);
                message(at, buffer.asSlice(done, n), write);
            }
            DmaDirtyLog log = dirtyLog;
            if (write && log != null) {
                log.mark(at, n); // after the write: a report between the two finds the page in the next one
            }
            done += n;
        }
    }

    /** One DMA_READ or DMA_WRITE message and its reply (spec, "VFIO_USER_DMA_READ", "VFIO_USER_DMA_WRITE"). */
    private void message(long iova, MemorySegment buffer, boolean write) {
        ByteBuf payload = Unpooled.buffer();
        if (write) {
            DmaWriteCodec.encode(new DmaWriteCodec.Request(iova, buffer.toArray(JAVA_BYTE)), payload);
        } else {
            DmaReadCodec.encode(new DmaReadCodec.Request(iova, buffer.byteSize()), payload);
        }
        VfioUserCommand command = write ? VfioUserCommand.DMA_WRITE : VfioUserCommand.DMA_READ;
        try (ReceivedMessage reply = requester.request(command, payload)) {
            if (reply.header().isError()) {
                throw new DmaException(String.format("%s of %d bytes at 0x%x: the client answered %s",
                        command, buffer.byteSize(), iova, Errno.name(reply.header().error())));
            }
            if (write) {
                DmaWriteCodec.Reply r = DmaWriteCodec.decodeReply(reply.payloadBuffer());
                if (r.address() != iova || r.count() != buffer.byteSize()) {
                    throw new DmaException(String.format("DMA_WRITE of %d bytes at 0x%x: the client wrote %d bytes at 0x%x",
                            buffer.byteSize(), iova, r.count(), r.address()));
                }
            } else {
                DmaReadCodec.Reply r = DmaReadCodec.decodeReply(reply.payloadBuffer(), requester.maxDataXferSize());
                if (r.address() != iova || r.data().length != buffer.byteSize()) {
                    throw new DmaException(String.format("DMA_READ of %d bytes at 0x%x: the client sent %d bytes for 0x%x",
                            buffer.byteSize(), iova, r.data().length, r.address()));
                }
                MemorySegment.copy(MemorySegment.ofArray(r.data()), 0, buffer, 0, buffer.byteSize());
            }
        } catch (VfioUserProtocolException e) {
            throw new DmaException(command + " at 0x" + Long.toHexString(iova) + ": bad reply: " + e.getMessage(), e);
        }
    }

    /** The mapping holding {@code iova}, or null. Hold the lock. */
    private Mapping find(long iova) {
        Map.Entry<Long, Mapping> e = maps.floorEntry(iova);
        if (e == null) {
            return null;
        }
        Mapping m = e.getValue();
        return Long.compareUnsigned(iova - m.iova, m.size) < 0 ? m : null;
    }

    /**
     * Adds a DMA_MAP range; with an fd, mmaps it (the fd is closed afterwards by the message),
     * unless the device asked for {@link VfioUserDevice#dmaByMessages()}.
     *
     * @throws VfioUserProtocolException EINVAL for an empty, unaligned (iova, size or offset not a multiple of 4 KiB),
     *         wrapping or overlapping range, or one that does not lie within the fd's size ({@code fstat}); ENOSPC
     *         above max_dma_maps; or the errno of fstat or mmap
     */
    void map(DmaMapCodec.Request r, ReceivedFds fds) {
        DmaMapCodec.checkFds(r, fds.count());
        String range = String.format("DMA_MAP range 0x%x+0x%x", r.address(), r.size());
        if (r.size() == 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, range + " is empty");
        }
        if (((r.address() | r.size() | r.offset()) & (PAGE - 1)) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, String.format("%s at fd offset 0x%x is not aligned to %d bytes",
                    range, r.offset(), PAGE));
        }
        long last = r.address() + r.size() - 1;
        if (Long.compareUnsigned(last, r.address()) < 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, range + " wraps past 2^64");
        }
        if (fds.count() == 1) {
            long fdSize;
            try {
                fdSize = Libc.fstatSize(fds.peek(0));
            } catch (dev.panamax.core.sys.LinuxException e) {
                throw new VfioUserProtocolException(e.errno(), range + ": " + e.getMessage());
            }
            // [offset, offset + size) within [0, fdSize), without computing offset + size.
            if (Long.compareUnsigned(r.offset(), fdSize) > 0 || Long.compareUnsigned(r.size(), fdSize - r.offset()) > 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, String.format("%s at fd offset 0x%x does not lie within the fd's %d bytes",
                        range, r.offset(), fdSize));
            }
        }
        lock.writeLock().lock();
        try {
            Map.Entry<Long, Mapping> below = maps.floorEntry(last);
            if (below != null && Long.compareUnsigned(below.getValue().last(), r.address()) >= 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, String.format("DMA_MAP range 0x%x+0x%x overlaps 0x%x+0x%x",
                        r.address(), r.size(), below.getValue().iova, below.getValue().size));
            }
            if (maps.size() >= maxMaps) {
                throw new VfioUserProtocolException(Errno.ENOSPC, "DMA_MAP: already " + maps.size() + " ranges, max_dma_maps is " + maxMaps);
            }
            Mapping m;
            if (fds.count() == 1 && !ignoreFds) {
                int prot = ((r.flags() & dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ()) != 0 ? Libc.PROT_READ : 0)
                        | ((r.flags() & dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE()) != 0 ? Libc.PROT_WRITE : 0);
                MemorySegment whole;
                try {
                    whole = Libc.mmap(r.size(), prot, Libc.MAP_SHARED, fds.peek(0), r.offset(), range);
                } catch (dev.panamax.core.sys.LinuxException e) {
                    throw new VfioUserProtocolException(e.errno(), e.getMessage());
                }
                m = new Mapping(r.address(), r.size(), r.flags(), whole, whole);
            } else {
                m = new Mapping(r.address(), r.size(), r.flags(), null, null);
            }
            maps.put(r.address(), m);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Removes a range given with DMA_MAP, exactly as mapped.
     *
     * @throws VfioUserProtocolException EINVAL when no such range is mapped
     */
    void unmap(DmaUnmapCodec.Unmap u) {
        lock.writeLock().lock();
        try {
            Mapping m = maps.get(u.address());
            if (m == null || m.size != u.size()) {
                throw new VfioUserProtocolException(Errno.EINVAL, String.format("DMA_UNMAP 0x%x+0x%x: no such DMA_MAP range", u.address(), u.size()));
            }
            maps.remove(u.address());
            if (m.mapping != null) {
                Libc.munmap(m.mapping);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** @return how many DMA_MAP ranges are held */
    public int count() {
        lock.readLock().lock();
        try {
            return maps.size();
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}: from now on every {@link #write} marks its pages. A START
     * repeating the running one changes nothing (libvfio-user).
     *
     * @param ranges the DMA addresses to log; empty for every DMA_MAP range held now
     * @throws VfioUserProtocolException EBUSY while logging with other parameters; EINVAL or E2BIG as
     *         {@link DmaDirtyLog#DmaDirtyLog} (EINVAL too for no ranges and no DMA_MAP range)
     */
    synchronized void startLogging(long pageSize, List<DmaRange> ranges) {
        List<DmaRange> logged = ranges;
        if (logged.isEmpty()) {
            lock.readLock().lock();
            try {
                logged = maps.values().stream()
                        .map(m -> new DmaRange(m.iova, m.size)).toList();
            } finally {
                lock.readLock().unlock();
            }
        }
        DmaDirtyLog now = dirtyLog;
        if (now != null) {
            if (now.sameAs(pageSize, logged)) {
                return;
            }
            throw new VfioUserProtocolException(Errno.EBUSY, "DMA logging is on already, with other parameters");
        }
        dirtyLog = new DmaDirtyLog(pageSize, logged);
    }

    /** {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP}; nothing when logging is off. */
    synchronized void stopLogging() {
        dirtyLog = null;
    }

    /**
     * {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT}: reads and clears the log of one range.
     *
     * @throws VfioUserProtocolException EINVAL when logging is off, or as {@link DmaDirtyLog#report}
     */
    byte[] report(DmaLoggingReport r) {
        DmaDirtyLog log = dirtyLog;
        if (log == null) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging report while logging is off");
        }
        return log.report(r);
    }

    /** Unmaps everything (the client is gone). */
    void unmapAll() {
        dirtyLog = null;
        lock.writeLock().lock();
        try {
            for (Mapping m : maps.values()) {
                if (m.mapping != null) {
                    Libc.munmap(m.mapping);
                }
            }
            maps.clear();
        } finally {
            lock.writeLock().unlock();
        }
    }
}
