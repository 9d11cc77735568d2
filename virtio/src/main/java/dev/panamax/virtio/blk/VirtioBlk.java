package dev.panamax.virtio.blk;

import dev.panamax.vfiouser.server.DeviceDma;
import dev.panamax.vfiouser.server.DmaException;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioPciTransport;
import dev.panamax.virtio.Virtqueue;
import dev.panamax.virtio.VirtqueueException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A virtio-blk device (virtio 1.2, 5.2 "Block Device") backed by a disk image file: request parsing and
 * file I/O. The PCI side (capabilities, common configuration, queues, interrupts) is the
 * {@link VirtioPciTransport}'s; serve one with {@code new VirtioPciTransport(blk, dmaByMessages).serve(socket)}.
 * One request queue; requests run on the server's request thread when the driver rings the queue's doorbell.
 *
 * <p>PCI identity (4.1.2): device ID 0x1040 + 2 (non-transitional block device), class 0x010000 (mass storage).
 * Features offered (5.2.3): VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, and
 * VIRTIO_BLK_F_RO for a read-only disk (the transport adds VIRTIO_F_VERSION_1 and VIRTIO_F_RING_INDIRECT_DESC).
 * Requests (5.2.6): IN, OUT, FLUSH, GET_ID; others answer VIRTIO_BLK_S_UNSUPP. Bad requests answer
 * VIRTIO_BLK_S_IOERR; a broken ring is the transport's DEVICE_NEEDS_RESET.
 *
 * <p>Migration: the transport saves the queues; this device adds its capacity, read-only flag and serial
 * ({@link #saveState}), and a destination serving another disk refuses them ({@link #loadState}).
 *
 * <p>One instance per client. Not thread-safe on its own: the transport calls it with its lock held.
 */
public final class VirtioBlk implements VirtioDevice, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlk.class);

    /** 5 "Device Types": block device. */
    public static final int VIRTIO_ID_BLOCK = 2;
    /** 4.1.2.1: 0x1040 plus the virtio device ID. */
    public static final int PCI_DEVICE_ID_VIRTIO_BLK = VirtioPciTransport.PCI_DEVICE_ID_VIRTIO_BASE + VIRTIO_ID_BLOCK;
    public static final int CLASS_MASS_STORAGE = 0x010000;
    /** struct virtio_blk_config up to blk_size (5.2.4), bytes. */
    public static final int DEVICE_CFG_SIZE = 24;

    // ---- Feature bits (5.2.3) ----
    public static final int VIRTIO_BLK_F_SIZE_MAX = 1;
    public static final int VIRTIO_BLK_F_SEG_MAX = 2;
    public static final int VIRTIO_BLK_F_RO = 5;
    public static final int VIRTIO_BLK_F_BLK_SIZE = 6;
    public static final int VIRTIO_BLK_F_FLUSH = 9;

    // ---- Requests (5.2.6) ----
    public static final int VIRTIO_BLK_T_IN = 0;
    public static final int VIRTIO_BLK_T_OUT = 1;
    public static final int VIRTIO_BLK_T_FLUSH = 4;
    public static final int VIRTIO_BLK_T_GET_ID = 8;
    public static final int VIRTIO_BLK_S_OK = 0;
    public static final int VIRTIO_BLK_S_IOERR = 1;
    public static final int VIRTIO_BLK_S_UNSUPP = 2;
    /** struct virtio_blk_req header: le32 type, le32 reserved, le64 sector. */
    public static final int REQUEST_HEADER_SIZE = 16;
    /** 5.2.6: GET_ID writes up to 20 bytes of serial, NUL-padded. */
    public static final int VIRTIO_BLK_ID_BYTES = 20;
    /** Sector size of the request's {@code sector} field and of capacity (5.2.4), bytes. */
    public static final int SECTOR_SIZE = 512;

    /** Queue size the device offers (a power of two, 2.7). */
    public static final int QUEUE_SIZE = 256;
    /** seg_max: data buffers per request (the queue size minus header and status). */
    public static final int SEG_MAX = QUEUE_SIZE - 2;
    /**
     * Most bytes of a request moved between the file and client memory by one file call (one {@code pread} or
     * {@code pwrite}): a 1 MiB request is one call, as QEMU's one {@code preadv} per request. Measured nested
     * (docs/performance.md), where the file lies on 9p and each call is a round trip to the host: with 128 KiB
     * steps the server spent 53 of its 58 s reading the file.
     */
    static final int IO_MAX = 1 << 20;

    /**
     * How to serve the disk.
     *
     * @param readOnly      open the file read-only, offer VIRTIO_BLK_F_RO, answer OUT with IOERR
     * @param serial        what GET_ID returns (at most 20 bytes of ASCII are used)
     * @param dmaByMessages for the transport: ignore DMA_MAP fds, reach driver memory by DMA_READ/DMA_WRITE messages only
     */
    public record Options(boolean readOnly, String serial, boolean dmaByMessages) {
        public static final Options DEFAULT = new Options(false, "panamax-virtio-blk", false);

        public Options {
            if (serial == null) {
                serial = DEFAULT.serial;
            }
        }
    }

    private final Path disk;
    private final Options options;
    private final FileChannel file;
    /** Capacity in 512-byte sectors (the file's size rounded down). */
    private final long capacity;
    /** The bounce buffer of {@link #transfer}: {@link #IO_MAX} bytes off the heap (a file call on a heap array copies once more). */
    private final Arena ioArena;
    private final MemorySegment io;
    /** What the device did for its client: counts, bytes, and time ({@link System#nanoTime}) for {@link #statistics}. */
    private long doorbells, requestsIn, requestsOut, requestsOther, bytesIn, bytesOut, servingNanos, fileNanos, dmaNanos;

    /**
     * Opens the disk image.
     *
     * @param disk a regular file of at least 512 bytes; its size is rounded down to whole sectors
     * @throws IllegalArgumentException when the file does not exist, is not a regular file, or is smaller than a sector
     * @throws UncheckedIOException when it cannot be opened
     */
    public VirtioBlk(Path disk, Options options) {
        this.disk = disk;
        this.options = options;
        if (!Files.exists(disk)) {
            throw new IllegalArgumentException("disk image " + disk + " does not exist");
        }
        if (!Files.isRegularFile(disk)) {
            throw new IllegalArgumentException("disk image " + disk + " is not a regular file");
        }
        try {
            file = options.readOnly() ? FileChannel.open(disk, StandardOpenOption.READ)
                    : FileChannel.open(disk, StandardOpenOption.READ, StandardOpenOption.WRITE);
            long size = file.size();
            if (size < SECTOR_SIZE) {
                file.close();
                throw new IllegalArgumentException("disk image " + disk + " has " + size + " bytes, less than one 512-byte sector");
            }
            if (size % SECTOR_SIZE != 0) {
                LOG.warn("disk image {}: {} bytes is not a whole number of sectors; the last {} bytes are not served", disk, size, size % SECTOR_SIZE);
            }
            capacity = size / SECTOR_SIZE;
        } catch (IOException e) {
            throw new UncheckedIOException("disk image " + disk + ": " + e.getMessage(), e);
        }
        ioArena = Arena.ofShared(); // closed with the file in close(); made last, so a refused image leaks nothing
        io = ioArena.allocate(IO_MAX, 4096);
    }

    /** @return the options it was opened with */
    public Options options() {
        return options;
    }

    /** @return capacity in 512-byte sectors */
    public long capacity() {
        return capacity;
    }

    @Override
    public String name() {
        return "virtio-blk";
    }

    @Override
    public int deviceId() {
        return VIRTIO_ID_BLOCK;
    }

    @Override
    public int pciClassCode() {
        return CLASS_MASS_STORAGE;
    }

    @Override
    public long features() {
        return (1L << VIRTIO_BLK_F_SEG_MAX) | (1L << VIRTIO_BLK_F_BLK_SIZE) | (1L << VIRTIO_BLK_F_FLUSH)
                | (options.readOnly() ? 1L << VIRTIO_BLK_F_RO : 0);
    }

    @Override
    public int[] queueMaxSizes() {
        return new int[]{QUEUE_SIZE};
    }

    /** struct virtio_blk_config (5.2.4): capacity, size_max (0), seg_max, geometry (0), blk_size. */
    @Override
    public byte[] config() {
        ByteBuffer b = ByteBuffer.allocate(DEVICE_CFG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, capacity);
        b.putInt(12, SEG_MAX);
        b.putInt(20, SECTOR_SIZE);
        return b.array();
    }

    /** Bytes of {@link #saveState}: le64 capacity, u8 read_only, 3 reserved, u8[20] GET_ID serial. */
    public static final int STATE_SIZE = 32;

    /**
     * Migration: what the driver has learnt of this disk, so that a destination serving another disk refuses it.
     * 32 bytes, little-endian: 0 le64 capacity (512-byte sectors), 8 u8 read_only (0 or 1), 9 u8[3] reserved (0),
     * 12 u8[20] the GET_ID serial (5.2.6, NUL-padded). The disk contents are not in it: the file is shared.
     */
    @Override
    public byte[] saveState() {
        return ByteBuffer.allocate(STATE_SIZE).order(ByteOrder.LITTLE_ENDIAN).putLong(capacity)
                .put((byte) (options.readOnly() ? 1 : 0)).put(new byte[3]).put(serialId()).array();
    }

    /**
     * Migration: checks the source's disk is this one as the driver sees it (there is nothing to change here).
     *
     * @throws IllegalArgumentException for another length, another capacity, read-only flag or serial
     */
    @Override
    public void loadState(byte[] state) {
        if (state.length != STATE_SIZE) {
            throw new IllegalArgumentException("virtio-blk state: " + state.length + " bytes, expected " + STATE_SIZE);
        }
        ByteBuffer b = ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN);
        long sourceCapacity = b.getLong(0);
        int readOnly = b.get(8) & 0xFF;
        byte[] serial = Arrays.copyOfRange(state, 12, STATE_SIZE);
        if (sourceCapacity != capacity) {
            throw new IllegalArgumentException("virtio-blk state: the source's disk has " + Long.toUnsignedString(sourceCapacity)
                    + " sectors, this one (" + disk + ") " + capacity);
        }
        if (readOnly > 1 || b.get(9) != 0 || b.get(10) != 0 || b.get(11) != 0) {
            throw new IllegalArgumentException("virtio-blk state: read_only " + readOnly + " or reserved bytes set");
        }
        if ((readOnly == 1) != options.readOnly()) {
            throw new IllegalArgumentException("virtio-blk state: the source's disk is " + (readOnly == 1 ? "read-only" : "read-write")
                    + ", this one is " + (options.readOnly() ? "read-only" : "read-write"));
        }
        if (!Arrays.equals(serial, serialId())) {
            throw new IllegalArgumentException("virtio-blk state: the source's serial \""
                    + new String(serial, StandardCharsets.US_ASCII).replace("\0", "") + "\" differs from \"" + options.serial() + "\"");
        }
    }

    /** @return what GET_ID returns: the serial's ASCII bytes, NUL-padded or cut to 20 */
    private byte[] serialId() {
        return Arrays.copyOf(options.serial().getBytes(StandardCharsets.US_ASCII), VIRTIO_BLK_ID_BYTES);
    }

    @Override
    public void close() {
        try {
            file.close();
        } catch (IOException e) {
            LOG.warn("closing disk image {}: {}", disk, e.toString());
        }
        ioArena.close();
    }

    // ---- The request queue (2.7.13 from the device's side, 5.2.6) ----

    /** The driver rang the doorbell: serve every available request. */
    @Override
    public boolean queueNotified(Virtqueue queue, DeviceDma dma) {
        long start = System.nanoTime();
        doorbells++;
        boolean used = false;
        Virtqueue.Chain chain;
        while ((chain = queue.pop(dma)) != null) {
            long written = request(chain, dma);
            queue.push(dma, chain.head(), written);
            used = true;
        }
        servingNanos += System.nanoTime() - start;
        return used;
    }

    /**
     * What the device did since it was made, one line: doorbells served, requests by type with their bytes (and so
     * the mean request size the driver chose), and where the serving time went: moving data between the file and
     * the host (file), between the host and the client's memory (DMA), the rest (rings, parsing). Read it after the
     * client is gone (its request thread ended) or under the transport's lock.
     */
    public String statistics() {
        long requests = requestsIn + requestsOut + requestsOther;
        return String.format("%d doorbells, %d requests (IN %d: %d KiB, OUT %d: %d KiB, other %d; %d KiB per IN);"
                        + " serving took %d ms: file %d ms, DMA %d ms, rings and parsing %d ms",
                doorbells, requests, requestsIn, bytesIn >> 10, requestsOut, bytesOut >> 10, requestsOther,
                requestsIn == 0 ? 0 : (bytesIn >> 10) / requestsIn, servingNanos / 1_000_000, fileNanos / 1_000_000,
                dmaNanos / 1_000_000, Math.max(0, servingNanos - fileNanos - dmaNanos) / 1_000_000);
    }

    /**
     * One request (5.2.6): struct virtio_blk_req {le32 type; le32 reserved; le64 sector;
     * u8 data[]; u8 status}, header device-readable, status the last device-writable byte.
     *
     * @return bytes written into the chain's writable buffers (the used element's len)
     * @throws VirtqueueException when the chain has no writable byte for the status
     * @throws DmaException when the status byte cannot be written
     */
    private long request(Virtqueue.Chain chain, DeviceDma dma) {
        List<Virtqueue.Buffer> readable = chain.buffers().stream().filter(b -> !b.writable()).toList();
        List<Virtqueue.Buffer> writable = chain.buffers().stream().filter(Virtqueue.Buffer::writable).toList();
        long readableBytes = chain.readableBytes();
        long writableBytes = chain.writableBytes();
        if (writableBytes < 1) {
            throw new VirtqueueException("request " + chain.head() + " has no device-writable byte for its status");
        }
        Virtqueue.Buffer statusByte = slice(writable, writableBytes - 1, 1).getFirst();
        List<Virtqueue.Buffer> in = slice(writable, 0, writableBytes - 1);
        int result;
        long written = 1;
        if (readableBytes < REQUEST_HEADER_SIZE) {
            LOG.warn("virtio-blk: request {} has {} readable bytes, less than its 16-byte header", chain.head(), readableBytes);
            result = VIRTIO_BLK_S_IOERR;
        } else {
            int type = -1;
            long sector = -1;
            try {
                byte[] header = new byte[REQUEST_HEADER_SIZE];
                gather(dma, slice(readable, 0, REQUEST_HEADER_SIZE), header);
                ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
                type = h.getInt(0);
                sector = h.getLong(8);
                List<Virtqueue.Buffer> out = slice(readable, REQUEST_HEADER_SIZE, readableBytes - REQUEST_HEADER_SIZE);
                switch (type) {
                    case VIRTIO_BLK_T_IN -> {
                        requestsIn++;
                        result = transfer(dma, sector, in, false);
                        written += result == VIRTIO_BLK_S_OK ? writableBytes - 1 : 0;
                        bytesIn += written - 1;
                    }
                    case VIRTIO_BLK_T_OUT -> {
                        requestsOut++;
                        result = options.readOnly() ? VIRTIO_BLK_S_IOERR : transfer(dma, sector, out, true);
                        bytesOut += result == VIRTIO_BLK_S_OK ? readableBytes - REQUEST_HEADER_SIZE : 0;
                    }
                    case VIRTIO_BLK_T_FLUSH -> {
                        requestsOther++;
                        file.force(true);
                        result = VIRTIO_BLK_S_OK;
                    }
                    case VIRTIO_BLK_T_GET_ID -> {
                        requestsOther++;
                        byte[] id = serialId();
                        long n = Math.min(VIRTIO_BLK_ID_BYTES, writableBytes - 1);
                        scatter(dma, slice(in, 0, n), id);
                        written += n;
                        result = VIRTIO_BLK_S_OK;
                    }
                    default -> {
                        requestsOther++;
                        result = VIRTIO_BLK_S_UNSUPP;
                    }
                }
            } catch (IOException | DmaException e) {
                // The disk failed, or a header or data buffer lies outside DMA-mapped memory.
                LOG.warn("virtio-blk: request {} type {} sector {}: {}", chain.head(), type, Long.toUnsignedString(sector), e.getMessage());
                result = VIRTIO_BLK_S_IOERR;
                written = 1;
            }
        }
        dma.write(statusByte.addr(), new byte[]{(byte) result});
        return written;
    }

    /**
     * Moves whole sectors between the file from {@code sector} and the data buffers.
     *
     * @param toFile true for OUT (driver memory to file), false for IN
     * @return VIRTIO_BLK_S_OK, or VIRTIO_BLK_S_IOERR for a length that is not whole sectors or a range past the capacity
     */
    private int transfer(DeviceDma dma, long sector, List<Virtqueue.Buffer> data, boolean toFile) throws IOException {
        long bytes = data.stream().mapToLong(Virtqueue.Buffer::len).sum();
        // 5.2.6.1: data is a multiple of 512 bytes; 5.2.6.2: the range must lie within capacity.
        if (bytes % SECTOR_SIZE != 0 || Long.compareUnsigned(sector, capacity) > 0 || bytes / SECTOR_SIZE > capacity - sector) {
            LOG.warn("virtio-blk: {} of {} bytes at sector {} refused (capacity {} sectors)", toFile ? "write" : "read", bytes, Long.toUnsignedString(sector), capacity);
            return VIRTIO_BLK_S_IOERR;
        }
        long position = sector * SECTOR_SIZE;
        // Window by window of the request's data: one file call for up to IO_MAX bytes, the buffers' pieces of the
        // window copied to or from client memory.
        for (long from = 0; from < bytes; from += IO_MAX) {
            int n = (int) Math.min(IO_MAX, bytes - from);
            List<Virtqueue.Buffer> pieces = slice(data, from, n);
            ByteBuffer bb = io.asSlice(0, n).asByteBuffer();
            long t0 = System.nanoTime();
            long t1;
            if (toFile) {
                long at = 0;
                for (Virtqueue.Buffer b : pieces) {
                    dma.read(b.addr(), io.asSlice(at, b.len()));
                    at += b.len();
                }
                t1 = System.nanoTime();
                while (bb.hasRemaining()) {
                    file.write(bb, position + bb.position());
                }
                dmaNanos += t1 - t0;
                fileNanos += System.nanoTime() - t1;
            } else {
                while (bb.hasRemaining()) {
                    if (file.read(bb, position + bb.position()) < 0) {
                        throw new IOException("disk image " + disk + " ended before byte " + (position + bb.position()));
                    }
                }
                t1 = System.nanoTime();
                long at = 0;
                for (Virtqueue.Buffer b : pieces) {
                    dma.write(b.addr(), io.asSlice(at, b.len()));
                    at += b.len();
                }
                fileNanos += t1 - t0;
                dmaNanos += System.nanoTime() - t1;
            }
            position += n;
        }
        return VIRTIO_BLK_S_OK;
    }

    /** The buffers covering {@code length} bytes from byte {@code from} of the stream {@code buffers} make. */
    static List<Virtqueue.Buffer> slice(List<Virtqueue.Buffer> buffers, long from, long length) {
        List<Virtqueue.Buffer> out = new ArrayList<>();
        long at = 0;
        for (Virtqueue.Buffer b : buffers) {
            long start = Math.max(from, at);
            long end = Math.min(from + length, at + b.len());
            if (start < end) {
                out.add(new Virtqueue.Buffer(b.addr() + (start - at), end - start, b.writable()));
            }
            at += b.len();
        }
        return out;
    }

    private static void gather(DeviceDma dma, List<Virtqueue.Buffer> buffers, byte[] into) {
        int at = 0;
        for (Virtqueue.Buffer b : buffers) {
            byte[] part = new byte[(int) b.len()];
            dma.read(b.addr(), part);
            System.arraycopy(part, 0, into, at, part.length);
            at += part.length;
        }
    }

    private static void scatter(DeviceDma dma, List<Virtqueue.Buffer> buffers, byte[] from) {
        int at = 0;
        for (Virtqueue.Buffer b : buffers) {
            dma.write(b.addr(), Arrays.copyOfRange(from, at, at + (int) b.len()));
            at += (int) b.len();
        }
    }
}
