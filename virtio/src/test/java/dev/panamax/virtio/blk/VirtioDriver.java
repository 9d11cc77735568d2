package dev.panamax.virtio.blk;

import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.virtio.VirtioDevice;
import dev.panamax.virtio.VirtioPciTransport;
import dev.panamax.virtio.Virtqueue;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What a virtio PCI driver does (virtio 1.x, 4.1.4 and 3.1.1), written against the vfio-user
 * messages only: the test side of {@link VirtioPciTransport} with {@link VirtioBlk}. It finds the virtio structures by walking the
 * capability list in configuration space, then reads and writes them by REGION_READ/WRITE. Guest
 * memory is {@code memory}, at DMA address {@code base}; the queue parts sit at fixed offsets.
 */
final class VirtioDriver {
    /** Offsets in guest memory: descriptor table, available ring, used ring, then free space. */
    static final long DESC = 0x0000;
    static final long AVAIL = 0x1000;
    static final long USED = 0x2000;
    static final long FREE = 0x3000;

    /** A virtio structure found in a vendor capability: BAR, offset and length in it. */
    record Structure(int bar, long offset, long length) {
    }

    /** Region access by some vfio-user client: REGION_READ / REGION_WRITE with the reply awaited. */
    interface RegionIo {
        byte[] read(long region, long offset, int count);

        void write(long region, long offset, byte[] data);
    }

    /** Whom region accesses go to; a migration test points it at the destination device. */
    RegionIo io;
    final MemorySegment memory;
    final long base;
    final Map<Integer, Structure> structures = new HashMap<>();
    int notifyOffMultiplier;
    int msixCapability;
    int pciCfgCapability;
    int queueSize;
    private int availIdx;
    private int nextDesc;

    VirtioDriver(TestClient client, MemorySegment memory, long base) {
        this(new RegionIo() {
            @Override
            public byte[] read(long region, long offset, int count) {
                ByteBuf r = client.ok(VfioUserCommand.REGION_READ, payload(b -> RegionReadCodec.encode(new RegionReadCodec.Request(offset, region, count), b)));
                return RegionReadCodec.decodeReply(r, 1 << 20).data();
            }

            @Override
            public void write(long region, long offset, byte[] data) {
                client.ok(VfioUserCommand.REGION_WRITE, payload(p -> RegionWriteCodec.encode(new RegionWriteCodec.Request(offset, region, data), p)));
            }
        }, memory, base);
    }

    VirtioDriver(RegionIo io, MemorySegment memory, long base) {
        this.io = io;
        this.memory = memory;
        this.base = base;
    }

    // ---- vfio-user region access ----

    byte[] read(long region, long offset, int count) {
        return io.read(region, offset, count);
    }

    long readLe(long region, long offset, int width) {
        byte[] b = read(region, offset, width);
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    void write(long region, long offset, int width, long value) {
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        io.write(region, offset, b);
    }

    // ---- discovery (4.1.4) ----

    /** Walks the capability list (PCI 3.0, 6.7) and records the virtio structures and the MSI-X capability. */
    void discover() {
        byte[] cfg = read(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 0, 256);
        assertTrue((cfg[0x06] & 0x10) != 0, "capabilities list bit");
        int at = cfg[0x34] & 0xFF;
        for (int n = 0; at != 0; n++) {
            assertTrue(n < 48 && at >= 0x40 && at < 256, "capability pointer 0x" + Integer.toHexString(at));
            int id = cfg[at] & 0xFF;
            if (id == PciConfigSpace.CAP_ID_VNDR) {
                MemorySegment c = MemorySegment.ofArray(cfg).asSlice(at);
                int cfgType = cfg[at + 3] & 0xFF;
                structures.putIfAbsent(cfgType, new Structure(cfg[at + 4] & 0xFF, c.get(JAVA_INT_UNALIGNED, 8) & 0xFFFFFFFFL,
                        c.get(JAVA_INT_UNALIGNED, 12) & 0xFFFFFFFFL));
                if (cfgType == VirtioPciTransport.VIRTIO_PCI_CAP_PCI_CFG) {
                    pciCfgCapability = at;
                }
                if (cfgType == VirtioPciTransport.VIRTIO_PCI_CAP_NOTIFY_CFG) {
                    assertEquals(20, cfg[at + 2], "notify cap_len");
                    notifyOffMultiplier = c.get(JAVA_INT_UNALIGNED, 16);
                }
            } else if (id == PciConfigSpace.CAP_ID_MSIX) {
                msixCapability = at;
            }
            at = cfg[at + 1] & 0xFF;
        }
    }

    Structure common() {
        return structures.get(VirtioPciTransport.VIRTIO_PCI_CAP_COMMON_CFG);
    }

    long common(int field, int width) {
        return readLe(common().bar(), common().offset() + field, width);
    }

    void common(int field, int width, long value) {
        write(common().bar(), common().offset() + field, width, value);
    }

    int status() {
        return (int) common(0x14, 1);
    }

    void status(int s) {
        common(0x14, 1, s);
    }

    long deviceConfig(int offset, int width) {
        Structure d = structures.get(VirtioPciTransport.VIRTIO_PCI_CAP_DEVICE_CFG);
        return readLe(d.bar(), d.offset() + offset, width);
    }

    int isr() {
        Structure s = structures.get(VirtioPciTransport.VIRTIO_PCI_CAP_ISR_CFG);
        return (int) readLe(s.bar(), s.offset(), 1);
    }

    void enableMsix(boolean on) {
        write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), msixCapability + 2, 2, on ? 0x8000 : 0);
    }

    /** @return both 32-bit halves of device_feature */
    long deviceFeatures() {
        common(0x00, 4, 0);
        long low = common(0x04, 4);
        common(0x00, 4, 1);
        return low | common(0x04, 4) << 32;
    }

    /**
     * Device initialization (3.1.1) and queue 0 setup (4.1.5.1.3): reset, ACKNOWLEDGE, DRIVER,
     * features, FEATURES_OK, the queue, DRIVER_OK.
     */
    void init(long features, int size, int configVector, int queueVector) {
        status(0);
        assertEquals(0, status(), "status after reset");
        status(VirtioDevice.ACKNOWLEDGE);
        status(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER);
        common(0x08, 4, 0);
        common(0x0C, 4, features & 0xFFFFFFFFL);
        common(0x08, 4, 1);
        common(0x0C, 4, features >>> 32);
        status(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK);
        assertEquals(VirtioDevice.FEATURES_OK, status() & VirtioDevice.FEATURES_OK, "FEATURES_OK accepted");
        common(0x10, 2, configVector);
        assertEquals(configVector, common(0x10, 2), "msix_config");
        common(0x16, 2, 0);
        assertEquals(VirtioBlk.QUEUE_SIZE, common(0x18, 2), "queue_size offered");
        common(0x18, 2, size);
        queueSize = size;
        common(0x1A, 2, queueVector);
        assertEquals(queueVector, common(0x1A, 2), "queue_msix_vector");
        // queue_desc as two 32-bit halves (4.1.3.1), the others as 64-bit writes.
        common(0x20, 4, (base + DESC) & 0xFFFFFFFFL);
        common(0x24, 4, (base + DESC) >>> 32);
        common(0x28, 8, base + AVAIL);
        common(0x30, 8, base + USED);
        assertEquals(base + DESC, common(0x20, 8));
        common(0x1C, 2, 1);
        status(VirtioDevice.ACKNOWLEDGE | VirtioDevice.DRIVER | VirtioDevice.FEATURES_OK | VirtioDevice.DRIVER_OK);
        availIdx = 0;
        nextDesc = 0;
    }

    // ---- guest memory ----

    void put(long offset, byte[] bytes) {
        MemorySegment.copy(bytes, 0, memory, JAVA_BYTE, offset, bytes.length);
    }

    byte[] get(long offset, int count) {
        byte[] b = new byte[count];
        MemorySegment.copy(memory, JAVA_BYTE, offset, b, 0, count);
        return b;
    }

    /** One descriptor to place: a DMA address (absolute), length, writable. */
    record Desc(long addr, long len, boolean writable) {
    }

    /** Writes descriptors {@code first..} chained by NEXT (into the table at {@code table}, an offset in memory). */
    void writeChain(long table, int first, Desc... chain) {
        for (int i = 0; i < chain.length; i++) {
            long d = table + 16L * (first + i);
            memory.set(JAVA_LONG_UNALIGNED, d, chain[i].addr());
            memory.set(JAVA_INT_UNALIGNED, d + 8, (int) chain[i].len());
            int flags = (chain[i].writable() ? Virtqueue.VIRTQ_DESC_F_WRITE : 0) | (i + 1 < chain.length ? Virtqueue.VIRTQ_DESC_F_NEXT : 0);
            memory.set(JAVA_SHORT_UNALIGNED, d + 12, (short) flags);
            memory.set(JAVA_SHORT_UNALIGNED, d + 14, (short) ((first + i + 1) % 0x10000));
        }
    }

    /** Places {@code chain} in the descriptor table and makes it available; @return its head index. */
    int submit(Desc... chain) {
        if (nextDesc + chain.length > queueSize) {
            nextDesc = 0; // keep each chain contiguous in the table
        }
        int head = nextDesc;
        writeChain(DESC, head, chain);
        nextDesc = (nextDesc + chain.length) % queueSize;
        makeAvailable(head);
        return head;
    }

    /** Puts {@code head} in the available ring and publishes it (2.7.13). */
    void makeAvailable(int head) {
        memory.set(JAVA_SHORT_UNALIGNED, AVAIL + 4 + 2L * (availIdx % queueSize), (short) head);
        availIdx = (availIdx + 1) & 0xFFFF;
        memory.set(JAVA_SHORT_UNALIGNED, AVAIL + 2, (short) availIdx);
    }

    /** Rings queue 0's doorbell (4.1.5.2); the device serves the queue before the write's reply. */
    void kick() {
        Structure n = structures.get(VirtioPciTransport.VIRTIO_PCI_CAP_NOTIFY_CFG);
        long queueNotifyOff = common(0x1E, 2);
        write(n.bar(), n.offset() + queueNotifyOff * notifyOffMultiplier, 2, 0);
    }

    int usedIdx() {
        return memory.get(JAVA_SHORT_UNALIGNED, USED + 2) & 0xFFFF;
    }

    /** @return {id, len} of used element {@code i} */
    long[] used(int i) {
        long e = USED + 4 + 8L * (i % queueSize);
        return new long[]{memory.get(JAVA_INT_UNALIGNED, e) & 0xFFFFFFFFL, memory.get(JAVA_INT_UNALIGNED, e + 4) & 0xFFFFFFFFL};
    }

    /** A request header (5.2.6) at {@code offset}: type, reserved 0, sector. */
    void header(long offset, int type, long sector) {
        memory.set(JAVA_INT_UNALIGNED, offset, type);
        memory.set(JAVA_INT_UNALIGNED, offset + 4, 0);
        memory.set(JAVA_LONG_UNALIGNED, offset + 8, sector);
    }
}
