package dev.panamax.virtio;

import dev.panamax.vfiouser.server.DeviceDma;

import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * A split virtqueue as the device sees it (virtio 1.2, 2.7 "Split Virtqueues"), in driver memory
 * reached through {@link DeviceDma} by DMA address (guest-physical for a VM):
 * <pre>
 *   descriptor table (2.7.5), 16 bytes each:  0 le64 addr   8 le32 len   12 le16 flags   14 le16 next
 *   available ring (2.7.6), "driver area":    0 le16 flags  2 le16 idx   4 le16 ring[size]   (le16 used_event)
 *   used ring (2.7.8), "device area":         0 le16 flags  2 le16 idx   4 {le32 id; le32 len} ring[size]   (le16 avail_event)
 * </pre>
 * The fields the driver programs through the common configuration (4.1.4.3) live here; the
 * {@link VirtioPciTransport} sets them, a {@link VirtioDevice} takes chains with {@link #pop} and
 * returns them with {@link #push}. Not thread-safe: the transport holds its lock.
 */
public final class Virtqueue {
    /** Bytes of one descriptor (struct virtq_desc). */
    public static final int DESC_SIZE = 16;
    /** 2.7.5: the buffer continues via {@code next}. */
    public static final int VIRTQ_DESC_F_NEXT = 1;
    /** 2.7.5: the buffer is device write-only (else device read-only). */
    public static final int VIRTQ_DESC_F_WRITE = 2;
    /** 2.7.5.3: the buffer holds a table of descriptors. */
    public static final int VIRTQ_DESC_F_INDIRECT = 4;
    /** 2.7.7: the driver asks for no interrupt when buffers are used. */
    public static final int VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
    /** 4.1.5.1.2: "no MSI-X vector". */
    public static final int NO_VECTOR = 0xFFFF;

    /** One device-readable or device-writable buffer of a chain: DMA address and bytes. */
    public record Buffer(long addr, long len, boolean writable) {
    }

    /**
     * A descriptor chain taken from the available ring: its head index (what goes into the used
     * ring) and its buffers, readable ones first (2.7.4.2).
     */
    public record Chain(int head, List<Buffer> buffers) {
        /** @return bytes in the device-readable buffers */
        public long readableBytes() {
            return buffers.stream().filter(b -> !b.writable()).mapToLong(Buffer::len).sum();
        }

        /** @return bytes in the device-writable buffers */
        public long writableBytes() {
            return buffers.stream().filter(Buffer::writable).mapToLong(Buffer::len).sum();
        }
    }

    final int index;
    /** The largest size the device allows (read by the driver as queue_size after reset). */
    final int maxSize;
    int size;
    int msixVector;
    boolean enabled;
    /** queue_desc, queue_driver, queue_device: DMA addresses of the three parts. */
    long desc;
    long driver;
    long device;
    /** The device's count of chains taken from the available ring (2.7.6: free-running u16). */
    private int lastAvailIdx;
    /** The device's used ring index (2.7.8: free-running u16). */
    private int usedIdx;

    /**
     * @param index   the queue's index in the device (queue_select, and queue_notify_off here)
     * @param maxSize the largest queue size the device allows, a power of two up to 32768 (2.7)
     */
    Virtqueue(int index, int maxSize) {
        this.index = index;
        this.maxSize = maxSize;
        reset();
    }

    /** Back to the state after a device reset (4.1.4.3.1: queue_size the maximum, no vector, disabled). */
    void reset() {
        size = maxSize;
        msixVector = NO_VECTOR;
        enabled = false;
        desc = driver = device = 0;
        lastAvailIdx = 0;
        usedIdx = 0;
    }

    /** The driver wrote queue_enable = 1: start at index 0 of both rings. */
    void enable() {
        enabled = true;
        lastAvailIdx = 0;
        usedIdx = 0;
    }

    /**
     * Takes the next chain the driver made available (2.7.13 "Supplying Buffers to The Device",
     * seen from the device), following NEXT and one level of INDIRECT (2.7.5.3).
     *
     * @return the chain, or null when the available ring holds nothing new
     * @throws VirtqueueException for a ring that breaks the rules
     * @throws dev.panamax.vfiouser.server.DmaException when a ring or table is not in DMA-mapped memory
     */
    public Chain pop(DeviceDma dma) {
        // 2.7 table "Virtqueue Part Alignment": descriptors 16, available ring 2, used ring 4.
        if ((desc & 15) != 0 || (driver & 1) != 0 || (device & 3) != 0) {
            throw new VirtqueueException(String.format("queue %d: misaligned rings desc 0x%x driver 0x%x device 0x%x", index, desc, driver, device));
        }
        int availIdx = u16(dma, driver + 2);
        int pending = (availIdx - lastAvailIdx) & 0xFFFF;
        if (pending == 0) {
            return null;
        }
        if (pending > size) {
            throw new VirtqueueException("queue " + index + ": avail idx " + availIdx + " is " + pending
                    + " ahead of the device's " + lastAvailIdx + ", more than the queue size " + size);
        }
        // Read the ring entry only after the index that published it (2.7.13.3: the driver's write barrier).
        VarHandle.acquireFence();
        int head = u16(dma, driver + 4 + 2L * (lastAvailIdx % size));
        lastAvailIdx = (lastAvailIdx + 1) & 0xFFFF;
        return new Chain(head, walk(dma, head));
    }

    private List<Buffer> walk(DeviceDma dma, int head) {
        List<Buffer> buffers = new ArrayList<>();
        long table = desc;
        int tableSize = size;
        int i = head;
        int seen = 0;
        boolean indirect = false;
        while (true) {
            if (i >= tableSize) {
                throw new VirtqueueException("queue " + index + " chain " + head + ": descriptor index " + i
                        + " is beyond the " + (indirect ? "indirect table's " : "queue's ") + tableSize);
            }
            // 2.7.5.2: "The driver MUST NOT create a descriptor chain longer than the Queue Size": a longer walk is a loop.
            if (++seen > tableSize) {
                throw new VirtqueueException("queue " + index + " chain " + head + ": more than " + tableSize + " descriptors (a loop?)");
            }
            ByteBuffer d = read(dma, table + (long) DESC_SIZE * i, DESC_SIZE);
            long addr = d.getLong(0);
            long len = d.getInt(8) & 0xFFFFFFFFL;
            int flags = d.getShort(12) & 0xFFFF;
            int next = d.getShort(14) & 0xFFFF;
            if ((flags & VIRTQ_DESC_F_INDIRECT) != 0) {
                // 2.7.5.3.1: not inside an indirect table, not with NEXT, a whole number of descriptors;
                // 2.7.5.2: the chain is no longer than the queue size.
                if (indirect || (flags & VIRTQ_DESC_F_NEXT) != 0 || len == 0 || len % DESC_SIZE != 0 || len / DESC_SIZE > size) {
                    throw new VirtqueueException(String.format("queue %d chain %d: bad indirect descriptor (flags 0x%x, len %d)",
                            index, head, flags, len));
                }
                indirect = true;
                table = addr;
                tableSize = (int) (len / DESC_SIZE);
                i = 0;
                seen = 0;
                continue;
            }
            boolean writable = (flags & VIRTQ_DESC_F_WRITE) != 0;
            // 2.7.4.2: "The driver MUST place any device-writable descriptor elements after any device-readable descriptor elements."
            if (!writable && !buffers.isEmpty() && buffers.getLast().writable()) {
                throw new VirtqueueException("queue " + index + " chain " + head + ": a device-readable descriptor follows a device-writable one");
            }
            if (len > 0) {
                buffers.add(new Buffer(addr, len, writable));
            }
            if ((flags & VIRTQ_DESC_F_NEXT) == 0) {
                return buffers;
            }
            i = next;
        }
    }

    /**
     * Returns a chain to the driver (2.7.8 "The Virtqueue Used Ring"): the element first, then
     * the index that publishes it.
     *
     * @param head    the chain's head descriptor index
     * @param written bytes the device wrote into the chain's writable buffers
     */
    public void push(DeviceDma dma, int head, long written) {
        ByteBuffer e = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(0, head).putInt(4, (int) written);
        dma.write(device + 4 + 8L * (usedIdx % size), e.array());
        usedIdx = (usedIdx + 1) & 0xFFFF;
        // 2.7.8.2 (device side of 2.7.13.3): the element must be visible before the index.
        VarHandle.releaseFence();
        dma.write(device + 2, ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort(0, (short) usedIdx).array());
        VarHandle.fullFence();
    }

    /** @return true when the driver set VIRTQ_AVAIL_F_NO_INTERRUPT (2.7.7; no VIRTIO_F_EVENT_IDX) */
    public boolean interruptSuppressed(DeviceDma dma) {
        return (u16(dma, driver) & VIRTQ_AVAIL_F_NO_INTERRUPT) != 0;
    }

    /** @return the device's count of chains taken from the available ring (free-running u16) */
    int lastAvailIdx() {
        return lastAvailIdx;
    }

    /** @return the device's used ring index (free-running u16) */
    int usedIdx() {
        return usedIdx;
    }

    /** Migration ({@link TransportMigration}): takes fields already validated against {@link #maxSize}. */
    void restore(int size, int msixVector, boolean enabled, long desc, long driver, long device, int lastAvailIdx, int usedIdx) {
        this.size = size;
        this.msixVector = msixVector;
        this.enabled = enabled;
        this.desc = desc;
        this.driver = driver;
        this.device = device;
        this.lastAvailIdx = lastAvailIdx;
        this.usedIdx = usedIdx;
    }

    /** @return the queue's index in the device */
    public int index() {
        return index;
    }

    /** @return the queue size the driver chose (at most {@link #maxSize}) */
    public int size() {
        return size;
    }

    private static int u16(DeviceDma dma, long addr) {
        return read(dma, addr, 2).getShort(0) & 0xFFFF;
    }

    private static ByteBuffer read(DeviceDma dma, long addr, int bytes) {
        byte[] b = new byte[bytes];
        dma.read(addr, b);
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }
}
