package dev.panamax.virtio.blk;

import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.vfiouser.server.TestClient;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.virtio.VirtioPciTransport;
import dev.panamax.virtio.Virtqueue;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static dev.panamax.virtio.VirtioDevice.*;
import static dev.panamax.virtio.VirtioPciTransport.*;
import static dev.panamax.virtio.blk.VirtioBlk.*;
import static dev.panamax.virtio.blk.VirtioDriver.Desc;
import static dev.panamax.virtio.blk.VirtioDriver.FREE;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The virtio-blk device over a real socketpair, driven by the vfio-user messages a VMM sends: a
 * driver's init sequence, requests in guest memory, interrupts by eventfd. Guest memory is a memfd,
 * reached by the device through its mmap (MAPPED), by DMA_READ/DMA_WRITE for a DMA_MAP without fd
 * (MESSAGES), or by messages although the fd was given ({@link VirtioBlk.Options#dmaByMessages}). The device is
 * {@link VirtioBlk} on the {@link VirtioPciTransport}.
 */
class VirtioBlkTest {
    static final long BASE = 0x1_0000_0000L;
    static final int MEMORY = 8 << 20;
    static final int DISK_SECTORS = 8192;
    static final long FEATURES = (1L << VIRTIO_F_VERSION_1) | (1L << VIRTIO_BLK_F_FLUSH) | (1L << VIRTIO_BLK_F_SEG_MAX)
            | (1L << VIRTIO_BLK_F_BLK_SIZE) | (1L << VIRTIO_F_RING_INDIRECT_DESC);

    enum Dma { MAPPED, MESSAGES, FORCED_MESSAGES }

    @TempDir
    Path dir;
    Path disk;
    byte[] initial;
    VirtioBlk blk;
    VirtioPciTransport pci;
    VfioUserServer server;
    TestClient client;
    MemFd guest;
    VirtioDriver driver;
    EventFd config;
    EventFd queue;
    EventFd intx;

    void start(Dma dma, boolean readOnly) throws IOException {
        disk = dir.resolve("disk.img");
        initial = new byte[DISK_SECTORS * SECTOR_SIZE];
        new Random(42).nextBytes(initial);
        Files.write(disk, initial);
        blk = new VirtioBlk(disk, new Options(readOnly, "serial-0123456789ABCDEFGH", dma == Dma.FORCED_MESSAGES));
        UnixSocket[] pair = UnixSocket.pair();
        pci = new VirtioPciTransport(blk, blk.options().dmaByMessages());
        server = pci.serve(pair[1]);
        guest = new MemFd("guest", MEMORY);
        client = new TestClient(pair[0], BASE, guest.mapping());
        client.version();
        client.ok(VfioUserCommand.DMA_MAP, payload(b -> DmaMapCodec.encode(new DmaMapCodec.Request(
                dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0, BASE, MEMORY), b)), dma == Dma.MESSAGES ? new int[0] : new int[]{guest.fd()});
        driver = new VirtioDriver(client, guest.mapping(), BASE);
        driver.discover();
        config = new EventFd(true);
        queue = new EventFd(true);
        intx = new EventFd(true);
        client.ok(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(
                dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(),
                vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), 0, 2, new byte[0]), b)), config.fd(), queue.fd());
        client.ok(VfioUserCommand.DEVICE_SET_IRQS, payload(b -> DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(
                dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(),
                vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 0, 1, new byte[0]), b)), intx.fd());
    }

    @AfterEach
    void stop() throws InterruptedException {
        if (client != null) {
            client.close();
            assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)));
            server.close();
            blk.close();
            guest.close();
            config.close();
            queue.close();
            intx.close();
        }
    }

    /** Submits a request and rings the doorbell; @return the used element {id, len} */
    long[] request(Desc... chain) {
        // The status byte starts as 0xFF, no VIRTIO_BLK_S_* value: the device must write it.
        Desc last = chain[chain.length - 1];
        if (last.writable() && last.addr() >= BASE && last.addr() + last.len() <= BASE + MEMORY) {
            guest.mapping().set(JAVA_BYTE, last.addr() - BASE + last.len() - 1, (byte) 0xFF);
        }
        int before = driver.usedIdx();
        int head = driver.submit(chain);
        driver.kick();
        assertEquals((before + 1) & 0xFFFF, driver.usedIdx(), "used idx after the doorbell");
        long[] used = driver.used(before);
        assertEquals(head, used[0], "used id is the chain's head");
        return used;
    }

    static Desc ro(long offset, long len) {
        return new Desc(BASE + offset, len, false);
    }

    static Desc rw(long offset, long len) {
        return new Desc(BASE + offset, len, true);
    }

    byte[] diskBytes(long from, int count) throws IOException {
        return Arrays.copyOfRange(Files.readAllBytes(disk), (int) from, (int) from + count);
    }

    @Test
    void pciIdentityAndCapabilities() throws IOException {
        start(Dma.MAPPED, false);
        assertEquals(0x1af4, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.VENDOR_ID, 2));
        assertEquals(0x1042, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.DEVICE_ID, 2));
        assertEquals(1, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.REVISION_ID, 1));
        assertEquals(0x010000, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.CLASS_PROG, 3));
        assertEquals(1, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.INTERRUPT_PIN, 1));
        // BAR0 is 64-bit memory of 16 KiB: all ones read back the size.
        assertEquals(PciBar.MEM_TYPE_64, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4));
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4, 0xFFFFFFFFL);
        assertEquals(~(VIRTIO_BAR_SIZE - 1) & 0xFFFFFFF0L | PciBar.MEM_TYPE_64, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.BASE_ADDRESS_0, 4));
        for (int type = VIRTIO_PCI_CAP_COMMON_CFG; type <= VIRTIO_PCI_CAP_DEVICE_CFG; type++) {
            assertNotNull(driver.structures.get(type), "virtio structure " + type);
            assertEquals(VIRTIO_BAR, driver.structures.get(type).bar());
        }
        assertEquals(new VirtioDriver.Structure(0, COMMON_CFG_OFFSET, COMMON_CFG_SIZE), driver.common());
        assertEquals(NOTIFY_OFF_MULTIPLIER, driver.notifyOffMultiplier);
        assertNotEquals(0, driver.msixCapability);
        // MSI-X: table size 2 (encoded N-1), table and PBA in BAR2.
        assertEquals(2, pci.msixVectors(), "one vector for configuration changes, one for the queue");
        assertEquals(pci.msixVectors() - 1, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), driver.msixCapability + 2, 2) & 0x7FF);
        assertEquals(MSIX_TABLE_OFFSET | MSIX_BAR, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), driver.msixCapability + 4, 4));
        assertEquals(MSIX_PBA_OFFSET | MSIX_BAR, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), driver.msixCapability + 8, 4));
        // Features: VERSION_1 and the block features; no ACCESS_PLATFORM, no EVENT_IDX, not RO.
        long f = driver.deviceFeatures();
        assertEquals(FEATURES, f);
        assertEquals(0, f & (1L << VIRTIO_F_ACCESS_PLATFORM | 1L << VIRTIO_F_RING_EVENT_IDX | 1L << VIRTIO_BLK_F_RO));
        // Device configuration (5.2.4).
        assertEquals(DISK_SECTORS, driver.deviceConfig(0, 8), "capacity");
        assertEquals(SEG_MAX, driver.deviceConfig(12, 4), "seg_max");
        assertEquals(512, driver.deviceConfig(20, 4), "blk_size");
        assertEquals(1, driver.common(0x12, 2), "num_queues");
        // VIRTIO_PCI_CAP_PCI_CFG (4.1.4.7): bar, offset, length, then pci_cfg_data reaches BAR0.
        int pc = driver.pciCfgCapability;
        assertNotEquals(0, pc);
        assertEquals(20, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 2, 1), "cap_len");
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 4, 1, VIRTIO_BAR);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 8, 4, DEVICE_CFG_OFFSET);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 12, 4, 4);
        assertEquals(DISK_SECTORS, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 16, 4), "capacity through pci_cfg_data");
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 8, 4, COMMON_CFG_OFFSET + 0x14);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 12, 4, 1);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 16, 4, ACKNOWLEDGE);
        assertEquals(ACKNOWLEDGE, driver.status(), "device_status written through pci_cfg_data");
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 8, 4, DEVICE_CFG_OFFSET + 1);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 12, 4, 2);
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 16, 4, 0x77);
        assertEquals(0x77, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), pc + 16, 4), "a misaligned access is not done");
        driver.status(0);
        // A queue the device does not have reads size 0.
        driver.common(0x16, 2, 1);
        assertEquals(0, driver.common(0x18, 2));
    }

    @ParameterizedTest
    @EnumSource(Dma.class)
    void writeReadFlushGetIdOverMsix(Dma dma) throws IOException {
        start(dma, false);
        driver.enableMsix(true);
        driver.init(FEATURES, 16, 0, 1);
        assertEquals(DRIVER_OK, pci.status() & DRIVER_OK);

        // OUT: two sectors at sector 3, the data in two buffers.
        byte[] data = new byte[2 * SECTOR_SIZE];
        new Random(7).nextBytes(data);
        driver.header(FREE, VIRTIO_BLK_T_OUT, 3);
        driver.put(FREE + 0x100, Arrays.copyOf(data, 300));
        driver.put(FREE + 0x1000, Arrays.copyOfRange(data, 300, data.length));
        driver.put(FREE + 0x80, new byte[]{(byte) 0xFF});
        long[] used = request(ro(FREE, 16), ro(FREE + 0x100, 300), ro(FREE + 0x1000, data.length - 300), rw(FREE + 0x80, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x80, 1)[0]);
        assertEquals(1, used[1], "OUT writes only the status byte");
        assertArrayEquals(data, diskBytes(3 * SECTOR_SIZE, data.length));
        assertEquals(1, queue.read(), "queue vector fired once");
        assertEquals(0, config.read());
        assertEquals(0, intx.read());

        // IN: sectors 2..4 into three buffers; the header split over two descriptors (2.6.4).
        driver.header(FREE + 0x200, VIRTIO_BLK_T_IN, 2);
        driver.put(FREE + 0x81, new byte[]{(byte) 0xFF});
        used = request(ro(FREE + 0x200, 5), ro(FREE + 0x205, 11), rw(FREE + 0x4000, 512), rw(FREE + 0x6000, 1000), rw(FREE + 0x8000, 24), rw(FREE + 0x81, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x81, 1)[0]);
        assertEquals(3 * SECTOR_SIZE + 1, used[1], "IN's used len: data and status");
        byte[] read = new byte[3 * SECTOR_SIZE];
        System.arraycopy(driver.get(FREE + 0x4000, 512), 0, read, 0, 512);
        System.arraycopy(driver.get(FREE + 0x6000, 1000), 0, read, 512, 1000);
        System.arraycopy(driver.get(FREE + 0x8000, 24), 0, read, 1512, 24);
        assertArrayEquals(Arrays.copyOfRange(initial, 2 * SECTOR_SIZE, 3 * SECTOR_SIZE), Arrays.copyOf(read, SECTOR_SIZE));
        assertArrayEquals(data, Arrays.copyOfRange(read, SECTOR_SIZE, 3 * SECTOR_SIZE));
        assertEquals(1, queue.read());
        // The disconnect line's counts so far: one doorbell and one request each, 1024 bytes out, 1536 in.
        assertTrue(blk.statistics().startsWith("2 doorbells, 2 requests (IN 1: 1 KiB, OUT 1: 1 KiB, other 0; 1 KiB per IN);"
                + " serving took "), blk.statistics());

        // FLUSH.
        driver.header(FREE + 0x300, VIRTIO_BLK_T_FLUSH, 0);
        request(ro(FREE + 0x300, 16), rw(FREE + 0x82, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x82, 1)[0]);

        // GET_ID: the serial's first 20 bytes.
        driver.header(FREE + 0x400, VIRTIO_BLK_T_GET_ID, 0);
        used = request(ro(FREE + 0x400, 16), rw(FREE + 0x500, VIRTIO_BLK_ID_BYTES), rw(FREE + 0x83, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x83, 1)[0]);
        assertEquals("serial-0123456789ABC", new String(driver.get(FREE + 0x500, VIRTIO_BLK_ID_BYTES)));
        assertEquals(VIRTIO_BLK_ID_BYTES + 1, used[1]);

        // Beyond the capacity: IOERR, the disk untouched.
        driver.header(FREE + 0x600, VIRTIO_BLK_T_IN, DISK_SECTORS);
        request(ro(FREE + 0x600, 16), rw(FREE + 0x4000, 512), rw(FREE + 0x84, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x84, 1)[0]);
        driver.header(FREE + 0x600, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1);
        request(ro(FREE + 0x600, 16), ro(FREE + 0x4000, 1024), rw(FREE + 0x85, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x85, 1)[0]);
        driver.header(FREE + 0x600, VIRTIO_BLK_T_OUT, -1L);
        request(ro(FREE + 0x600, 16), ro(FREE + 0x4000, 512), rw(FREE + 0x86, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x86, 1)[0]);
        // Not whole sectors: IOERR. An unknown type: UNSUPP.
        driver.header(FREE + 0x600, VIRTIO_BLK_T_IN, 0);
        request(ro(FREE + 0x600, 16), rw(FREE + 0x4000, 100), rw(FREE + 0x87, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x87, 1)[0]);
        driver.header(FREE + 0x600, 99, 0);
        request(ro(FREE + 0x600, 16), rw(FREE + 0x88, 1));
        assertEquals(VIRTIO_BLK_S_UNSUPP, driver.get(FREE + 0x88, 1)[0]);
        // A data buffer outside the DMA map: IOERR, the device goes on.
        driver.header(FREE + 0x600, VIRTIO_BLK_T_IN, 0);
        request(ro(FREE + 0x600, 16), new Desc(BASE + MEMORY + 4096, 512, true), rw(FREE + 0x89, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x89, 1)[0]);
        request(new Desc(BASE + MEMORY + 4096, 16, false), rw(FREE + 0x8B, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x8B, 1)[0], "a header outside the DMA map");
        // A header shorter than 16 bytes: IOERR.
        request(ro(FREE + 0x600, 8), rw(FREE + 0x8C, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x8C, 1)[0]);
        assertEquals(0, pci.status() & DEVICE_NEEDS_RESET);
        assertArrayEquals(Arrays.copyOfRange(initial, (DISK_SECTORS - 1) * SECTOR_SIZE, DISK_SECTORS * SECTOR_SIZE),
                diskBytes((DISK_SECTORS - 1) * SECTOR_SIZE, SECTOR_SIZE));

        // Indirect descriptors (2.7.5.3): the table at FREE + 0xA000 holds header, data, status.
        driver.header(FREE + 0x700, VIRTIO_BLK_T_IN, 3);
        driver.writeChain(FREE + 0xA000, 0, ro(FREE + 0x700, 16), rw(FREE + 0xC000, 512), rw(FREE + 0x8A, 1));
        guest.mapping().set(JAVA_BYTE, FREE + 0x8A, (byte) 0xFF);
        int before = driver.usedIdx();
        int head = driver.submit(new Desc(BASE + FREE + 0xA000, 48, false));
        guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.DESC + 16L * head + 12, (short) Virtqueue.VIRTQ_DESC_F_INDIRECT);
        driver.kick();
        assertEquals(before + 1, driver.usedIdx());
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x8A, 1)[0]);
        assertArrayEquals(Arrays.copyOf(data, 512), driver.get(FREE + 0xC000, 512));

        // The ring wraps: more requests than the queue size of 16.
        for (int i = 0; i < 40; i++) {
            driver.header(FREE + 0x800, VIRTIO_BLK_T_FLUSH, 0);
            request(ro(FREE + 0x800, 16), rw(FREE + 0x90, 1));
            assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x90, 1)[0]);
        }
        queue.read();
        // Two requests made available with one doorbell: one interrupt.
        driver.header(FREE + 0x900, VIRTIO_BLK_T_FLUSH, 0);
        driver.submit(ro(FREE + 0x900, 16), rw(FREE + 0x91, 1));
        driver.submit(ro(FREE + 0x900, 16), rw(FREE + 0x92, 1));
        int usedBefore = driver.usedIdx();
        driver.kick();
        assertEquals((usedBefore + 2) & 0xFFFF, driver.usedIdx());
        assertEquals(1, queue.read());

        if (dma == Dma.MAPPED) {
            assertEquals(0, client.dmaMessages, "mapped DMA needs no messages");
        } else {
            assertTrue(client.dmaMessages > 50, "DMA went by messages: " + client.dmaMessages);
        }
    }

    @ParameterizedTest
    @EnumSource(value = Dma.class, names = {"MAPPED", "FORCED_MESSAGES"})
    void aRequestLargerThanOneFileCallIsMovedWindowByWindow(Dma dma) throws IOException {
        start(dma, false);
        driver.enableMsix(true);
        driver.init(FEATURES, 16, 0, 1);
        // 2.5 file calls' worth (IO_MAX each), in buffers that end neither where a window ends nor together.
        int len = 5 * IO_MAX / 2;
        byte[] data = new byte[len];
        new Random(11).nextBytes(data);
        long src = 1 << 20;
        long dst = 4 << 20;
        java.lang.foreign.MemorySegment.copy(data, 0, guest.mapping(), JAVA_BYTE, src, len);
        int a = 700 << 10;
        int b = 1100 << 10;
        driver.header(FREE, VIRTIO_BLK_T_OUT, 100);
        request(ro(FREE, 16), ro(src, a), ro(src + a, b), ro(src + a + b, len - a - b), rw(FREE + 0x80, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x80, 1)[0]);
        assertArrayEquals(data, diskBytes(100L * SECTOR_SIZE, len));
        assertArrayEquals(Arrays.copyOf(initial, 100 * SECTOR_SIZE), diskBytes(0, 100 * SECTOR_SIZE), "before the range");
        int after = 100 * SECTOR_SIZE + len;
        assertArrayEquals(Arrays.copyOfRange(initial, after, initial.length), diskBytes(after, initial.length - after), "after it");
        int c = 300 << 10;
        int d = 2000 << 10;
        driver.header(FREE + 0x100, VIRTIO_BLK_T_IN, 100);
        long[] used = request(ro(FREE + 0x100, 16), rw(dst, c), rw(dst + c, d), rw(dst + c + d, len - c - d), rw(FREE + 0x81, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x81, 1)[0]);
        assertEquals(len + 1, used[1], "IN's used len: data and status");
        assertArrayEquals(data, guest.mapping().asSlice(dst, len).toArray(JAVA_BYTE));
    }

    @Test
    void theNotifyIoeventfdRingsTheQueueAsTheDoorbellWriteDoes() throws Exception {
        start(Dma.MAPPED, false);
        driver.enableMsix(true);
        driver.init(FEATURES, 16, 0, 1);
        // DEVICE_GET_REGION_IO_FDS of BAR0: queue 0's notify address, length 0 (any write), one fd.
        try (var m = client.call(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, payload(b -> DeviceGetRegionIoFdsCodec.encode(
                new DeviceGetRegionIoFdsCodec.Request(16 + 40 * 8, VIRTIO_BAR), b)))) {
            var r = DeviceGetRegionIoFdsCodec.decodeReply(m.payloadBuffer());
            assertEquals(List.of(new DeviceGetRegionIoFdsCodec.SubRegion(VirtioPciTransport.NOTIFY_OFFSET, 0, 0,
                    dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD(), 0, 0)), r.subRegions());
            assertEquals(1, m.fds().count());

            driver.header(FREE + 0x400, VIRTIO_BLK_T_GET_ID, 0);
            driver.put(FREE + 0x83, new byte[]{(byte) 0xFF});
            int before = driver.usedIdx();
            driver.submit(new Desc[]{ro(FREE + 0x400, 16), rw(FREE + 0x500, VIRTIO_BLK_ID_BYTES), rw(FREE + 0x83, 1)});
            // What KVM does for a matching guest write: signal the eventfd. No REGION_WRITE.
            try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
                assertEquals(8, dev.panamax.core.sys.Libc.writeRaw(m.fds().peek(0),
                        a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 1L)));
            }
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (driver.usedIdx() == before && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertEquals((before + 1) & 0xFFFF, driver.usedIdx(), "used idx after the ioeventfd");
            assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x83, 1)[0]);
            assertEquals("serial-0123456789ABC", new String(driver.get(FREE + 0x500, VIRTIO_BLK_ID_BYTES)));
            deadline = System.nanoTime() + 5_000_000_000L;
            long fired = 0;
            while (fired == 0 && System.nanoTime() < deadline) {
                fired = queue.read();
                Thread.sleep(fired == 0 ? 1 : 0);
            }
            assertEquals(1, fired, "the queue's MSI-X vector fired");
        }
        // The doorbell by REGION_WRITE still works.
        driver.header(FREE + 0x300, VIRTIO_BLK_T_FLUSH, 0);
        request(ro(FREE + 0x300, 16), rw(FREE + 0x82, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x82, 1)[0]);
    }

    @Test
    void intxWhenMsixIsOffAndIsrReadClears() throws IOException {
        start(Dma.MAPPED, false);
        driver.init(FEATURES, 8, 0xFFFF, 0xFFFF);
        driver.header(FREE, VIRTIO_BLK_T_FLUSH, 0);
        request(ro(FREE, 16), rw(FREE + 0x80, 1));
        assertEquals(1, intx.read(), "INTx fired");
        assertEquals(0, queue.read());
        assertEquals(0x08, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.STATUS, 2) & 0x08, "PCI interrupt status");
        assertEquals(1, driver.isr(), "ISR queue bit");
        assertEquals(0, driver.isr(), "reading ISR cleared it");
        assertEquals(0, driver.readLe(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.STATUS, 2) & 0x08);
        // INTx disabled in the command register: ISR is set, no interrupt.
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, 2, 1 << 10);
        request(ro(FREE, 16), rw(FREE + 0x80, 1));
        assertEquals(0, intx.read());
        assertEquals(1, driver.isr());
        // The driver suppresses interrupts (VIRTQ_AVAIL_F_NO_INTERRUPT).
        driver.write(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), PciConfigSpace.COMMAND, 2, 0);
        guest.mapping().set(JAVA_BYTE, VirtioDriver.AVAIL, (byte) Virtqueue.VIRTQ_AVAIL_F_NO_INTERRUPT);
        request(ro(FREE, 16), rw(FREE + 0x80, 1));
        assertEquals(0, intx.read());
    }

    @Test
    void readOnlyDiskRefusesWrites() throws IOException {
        start(Dma.MAPPED, true);
        long f = driver.deviceFeatures();
        assertNotEquals(0, f & (1L << VIRTIO_BLK_F_RO));
        driver.enableMsix(true);
        driver.init(FEATURES | (1L << VIRTIO_BLK_F_RO), 8, 0, 1);
        driver.header(FREE, VIRTIO_BLK_T_OUT, 0);
        request(ro(FREE, 16), ro(FREE + 0x1000, 512), rw(FREE + 0x80, 1));
        assertEquals(VIRTIO_BLK_S_IOERR, driver.get(FREE + 0x80, 1)[0]);
        assertArrayEquals(initial, Files.readAllBytes(disk));
        driver.header(FREE, VIRTIO_BLK_T_IN, 0);
        request(ro(FREE, 16), rw(FREE + 0x1000, 512), rw(FREE + 0x80, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x80, 1)[0]);
        assertArrayEquals(Arrays.copyOf(initial, 512), driver.get(FREE + 0x1000, 512));
    }

    @Test
    void featureNegotiationRefusesUnknownFeaturesAndLegacyDrivers() throws IOException {
        start(Dma.MAPPED, false);
        driver.status(ACKNOWLEDGE | DRIVER);
        driver.common(0x08, 4, 1);
        driver.common(0x0C, 4, 0); // no VERSION_1
        driver.status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assertEquals(0, driver.status() & FEATURES_OK);
        driver.common(0x08, 4, 1);
        driver.common(0x0C, 4, 1 | 2); // VERSION_1 and ACCESS_PLATFORM, not offered
        driver.status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assertEquals(0, driver.status() & FEATURES_OK);
        // Vectors beyond the table read back NO_VECTOR; a queue size that is no power of two is refused.
        driver.common(0x10, 2, 7);
        assertEquals(0xFFFF, driver.common(0x10, 2));
        driver.common(0x18, 2, 12);
        assertEquals(QUEUE_SIZE, driver.common(0x18, 2));
        // Notifying before DRIVER_OK does nothing.
        driver.kick();
        assertEquals(0, driver.usedIdx());
    }

    @Test
    void brokenRingsSetNeedsResetThenResetRecovers() throws IOException {
        start(Dma.MAPPED, false);
        driver.enableMsix(true);
        driver.init(FEATURES, 8, 0, 1);
        // A descriptor whose next index is beyond the queue size.
        driver.header(FREE, VIRTIO_BLK_T_FLUSH, 0);
        int head = driver.submit(ro(FREE, 16), rw(FREE + 0x80, 1));
        guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.DESC + 16L * head + 14, (short) 200);
        driver.kick();
        assertEquals(DEVICE_NEEDS_RESET, driver.status() & DEVICE_NEEDS_RESET);
        assertEquals(1, config.read(), "configuration change interrupt");
        assertEquals(0, driver.usedIdx());
        // The driver resets and starts over; a loop 0 -> 1 -> 0 sets NEEDS_RESET again.
        driver.init(FEATURES, 8, 0, 1);
        assertEquals(0, driver.status() & DEVICE_NEEDS_RESET);
        driver.writeChain(VirtioDriver.DESC, 0, ro(FREE, 16), ro(FREE, 16));
        guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.DESC + 16 + 12, (short) Virtqueue.VIRTQ_DESC_F_NEXT);
        guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.DESC + 16 + 14, (short) 0);
        driver.makeAvailable(0);
        driver.kick();
        assertEquals(DEVICE_NEEDS_RESET, driver.status() & DEVICE_NEEDS_RESET);
        // Further doorbells are ignored until reset.
        driver.kick();
        // avail idx far ahead of the device: NEEDS_RESET.
        driver.init(FEATURES, 8, 0, 1);
        guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.AVAIL + 2, (short) 100);
        driver.kick();
        assertEquals(DEVICE_NEEDS_RESET, driver.status() & DEVICE_NEEDS_RESET);
        // An indirect descriptor with NEXT set, and an indirect table longer than the queue: NEEDS_RESET.
        for (int[] bad : new int[][]{{Virtqueue.VIRTQ_DESC_F_INDIRECT | Virtqueue.VIRTQ_DESC_F_NEXT, 32}, {Virtqueue.VIRTQ_DESC_F_INDIRECT, 16 * 9}}) {
            driver.init(FEATURES, 8, 0, 1);
            int h = driver.submit(ro(FREE + 0x1000, bad[1]));
            guest.mapping().set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, VirtioDriver.DESC + 16L * h + 12, (short) bad[0]);
            driver.kick();
            assertEquals(DEVICE_NEEDS_RESET, driver.status() & DEVICE_NEEDS_RESET, "indirect flags " + bad[0] + " len " + bad[1]);
        }
        // Rings outside the DMA map: NEEDS_RESET, not a dead server.
        driver.status(0);
        driver.status(ACKNOWLEDGE | DRIVER);
        driver.common(0x08, 4, 1);
        driver.common(0x0C, 4, 1);
        driver.status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        driver.common(0x20, 8, 0x1000);
        driver.common(0x28, 8, 0x2000);
        driver.common(0x30, 8, 0x3000);
        driver.common(0x1C, 2, 1);
        driver.status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        driver.kick();
        assertEquals(DEVICE_NEEDS_RESET, driver.status() & DEVICE_NEEDS_RESET);
        // A vfio DEVICE_RESET brings the device back to status 0; a good request then works.
        client.ok(VfioUserCommand.DEVICE_RESET, Unpooled.EMPTY_BUFFER);
        assertEquals(0, driver.status());
        driver.init(FEATURES, 8, 0, 1);
        driver.header(FREE, VIRTIO_BLK_T_FLUSH, 0);
        request(ro(FREE, 16), rw(FREE + 0x80, 1));
        assertEquals(VIRTIO_BLK_S_OK, driver.get(FREE + 0x80, 1)[0]);
    }

    @Test
    void badDiskImagesAreRefusedWithOneLine() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new VirtioBlk(dir.resolve("none.img"), Options.DEFAULT));
        assertEquals("disk image " + dir.resolve("none.img") + " does not exist", e.getMessage());
        Files.write(dir.resolve("small.img"), new byte[100]);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new VirtioBlk(dir.resolve("small.img"), Options.DEFAULT))
                .getMessage().contains("less than one 512-byte sector"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new VirtioBlk(dir, Options.DEFAULT))
                .getMessage().contains("is not a regular file"));
    }
}
