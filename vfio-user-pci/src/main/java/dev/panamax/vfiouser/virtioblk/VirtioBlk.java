package dev.panamax.vfiouser.virtioblk;

import dev.panamax.vfiouser.server.DeviceDma;
import dev.panamax.vfiouser.server.DeviceIrqs;
import dev.panamax.vfiouser.server.DmaException;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfiouser.server.BusDeviceRegion;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
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

import static dev.panamax.vfiouser.virtioblk.Virtqueue.NO_VECTOR;

/**
 * A virtio-blk device (virtio 1.x, 5.2 "Block Device") on the virtio PCI transport (4.1), served
 * over vfio-user, backed by a disk image file. One request queue; requests run on the server's
 * request thread when the driver writes the queue's doorbell.
 *
 * <p>PCI function (4.1.2): vendor 0x1af4, device 0x1040 + 2 (non-transitional block device),
 * revision 1, class 0x010000 (mass storage), subsystem 0x1af4:0x1100; interrupt pin INTA#.
 * Regions:
 * <pre>
 *   BAR0 (64-bit memory, 16 KiB, trapped)     BAR2 (32-bit memory, 4 KiB, trapped)
 *     0x0000 common configuration (4.1.4.3)     0x000 MSI-X table, 2 entries (PCI 3.0, 6.8.2)
 *     0x1000 ISR status (4.1.4.5)               0x800 MSI-X pending bit array
 *     0x2000 device configuration (5.2.4)
 *     0x3000 notifications (4.1.4.4), notify_off_multiplier 4
 * </pre>
 * MSI-X vector 0 is meant for configuration changes, vector 1 for the queue (the driver chooses).
 * The MSI-X table is kept as plain memory: masking a vector is left to the client, which owns the
 * interrupt routing (as for vfio-pci, where the VMM emulates the table); the device only honours the
 * capability's enable and function-mask bits. Without MSI-X the device sets ISR status and signals
 * INTx unless the command register disables it.
 *
 * A VIRTIO_PCI_CAP_PCI_CFG capability (4.1.4.7) reaches both BARs through configuration space.
 *
 * <p>Features offered (5.2.3, 6): VIRTIO_F_VERSION_1, VIRTIO_F_RING_INDIRECT_DESC,
 * VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, and VIRTIO_BLK_F_RO for a
 * read-only disk. Not offered: VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_EVENT_IDX. Requests
 * (5.2.6): IN, OUT, FLUSH, GET_ID; others answer VIRTIO_BLK_S_UNSUPP. Bad requests answer
 * VIRTIO_BLK_S_IOERR; a broken ring sets DEVICE_NEEDS_RESET.
 *
 * <p>Use: {@code new VirtioBlk(disk, options)}, then {@link #serve} on a connected socket; one
 * instance per client (its PCI state is not reset between clients). Thread-safe.
 */
public final class VirtioBlk implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlk.class);

    // ---- PCI identity (4.1.2) ----
    public static final int PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
    /** 4.1.2.1: 0x1040 plus the virtio device ID (5: block device is 2). */
    public static final int PCI_DEVICE_ID_VIRTIO_BLK = 0x1040 + 2;
    /** "Non-transitional devices SHOULD have a PCI Revision ID of 1 or higher." */
    public static final int REVISION = 1;
    public static final int CLASS_MASS_STORAGE = 0x010000;
    /** What QEMU uses for modern devices; informational only (4.1.2.1). */
    public static final int SUBSYSTEM_ID = 0x1100;

    // ---- Regions ----
    public static final int VIRTIO_BAR = 0;
    public static final long VIRTIO_BAR_SIZE = 0x4000;
    public static final int MSIX_BAR = 2;
    public static final long MSIX_BAR_SIZE = 0x1000;
    public static final int COMMON_CFG_OFFSET = 0x0000;
    public static final int ISR_OFFSET = 0x1000;
    public static final int DEVICE_CFG_OFFSET = 0x2000;
    public static final int NOTIFY_OFFSET = 0x3000;
    /** 4.1.4.4: queue i's doorbell is at NOTIFY_OFFSET + queue_notify_off * this; queue_notify_off = i. */
    public static final int NOTIFY_OFF_MULTIPLIER = 4;
    /** struct virtio_pci_common_cfg up to queue_device (4.1.4.3), bytes. */
    public static final int COMMON_CFG_SIZE = 0x38;
    /** struct virtio_blk_config up to blk_size (5.2.4), bytes. */
    public static final int DEVICE_CFG_SIZE = 24;
    public static final int MSIX_TABLE_OFFSET = 0x000;
    public static final int MSIX_PBA_OFFSET = 0x800;
    public static final int MSIX_VECTORS = 2;

    // ---- virtio PCI capabilities (4.1.4) ----
    public static final int PCI_CAP_ID_VNDR = 0x09;
    public static final int PCI_CAP_ID_MSIX = 0x11;
    public static final int VIRTIO_PCI_CAP_COMMON_CFG = 1;
    public static final int VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
    public static final int VIRTIO_PCI_CAP_ISR_CFG = 3;
    public static final int VIRTIO_PCI_CAP_DEVICE_CFG = 4;
    public static final int VIRTIO_PCI_CAP_PCI_CFG = 5;

    // ---- Device status (2.1) ----
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 64;
    public static final int FAILED = 128;

    // ---- Feature bits (5.2.3, 6) ----
    public static final int VIRTIO_BLK_F_SIZE_MAX = 1;
    public static final int VIRTIO_BLK_F_SEG_MAX = 2;
    public static final int VIRTIO_BLK_F_RO = 5;
    public static final int VIRTIO_BLK_F_BLK_SIZE = 6;
    public static final int VIRTIO_BLK_F_FLUSH = 9;
    public static final int VIRTIO_F_RING_INDIRECT_DESC = 28;
    public static final int VIRTIO_F_RING_EVENT_IDX = 29;
    public static final int VIRTIO_F_VERSION_1 = 32;
    public static final int VIRTIO_F_ACCESS_PLATFORM = 33;

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
    /** ISR status bits (4.1.4.5). */
    static final int ISR_QUEUE = 1;
    static final int ISR_CONFIG = 2;
    /** Largest bytes moved between the file and client memory in one step. */
    private static final int CHUNK = 128 * 1024;

    /**
     * How to serve the disk.
     *
     * @param readOnly      open the file read-only, offer VIRTIO_BLK_F_RO, answer OUT with IOERR
     * @param serial        what GET_ID returns (at most 20 bytes of ASCII are used)
     * @param dmaByMessages ignore DMA_MAP fds: reach driver memory by DMA_READ/DMA_WRITE messages only
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
    private final long deviceFeatures;
    private final PciFunction function;
    private final PciConfigSpace config;
    private final MsixCapability msix;
    private final BusDeviceRegion msixRegion;
    private final int pciCfgCapability;
    private final VfioUserDevice device;
    private final Virtqueue queue = new Virtqueue(0, QUEUE_SIZE);
    private final byte[] chunk = new byte[CHUNK];
    private DeviceDma dma;
    private DeviceIrqs irqs;

    // Common configuration state (4.1.4.3).
    private int deviceFeatureSelect;
    private int driverFeatureSelect;
    private long driverFeatures;
    private int msixConfig;
    private int status;
    private int queueSelect;
    private int isr;

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
        deviceFeatures = (1L << VIRTIO_F_VERSION_1) | (1L << VIRTIO_F_RING_INDIRECT_DESC) | (1L << VIRTIO_BLK_F_SEG_MAX)
                | (1L << VIRTIO_BLK_F_BLK_SIZE) | (1L << VIRTIO_BLK_F_FLUSH) | (options.readOnly() ? 1L << VIRTIO_BLK_F_RO : 0);

        function = new PciFunction("virtio-blk", new PciConfigSpace(PciConfigSpace.SIZE));
        config = function.config();
        config.initHeader(PCI_VENDOR_ID_REDHAT_QUMRANET, PCI_DEVICE_ID_VIRTIO_BLK, REVISION, CLASS_MASS_STORAGE,
                PCI_VENDOR_ID_REDHAT_QUMRANET, SUBSYSTEM_ID);
        function.setInterruptPin(1);
        function.setBar(VIRTIO_BAR, PciBar.memory64(VIRTIO_BAR_SIZE, false), null);
        function.setBar(MSIX_BAR, PciBar.memory32(MSIX_BAR_SIZE), null);
        // MSI-X (PCI 3.0, 6.8.2): table and PBA in BAR2. The client owns vector masking (see above): the
        // listener is told nothing the device needs, and the device fires by the capability's enable and
        // function-mask bits only.
        msix = new MsixCapability(function, MSIX_VECTORS, MSIX_BAR, MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET, new MsiListener() {
            @Override
            public void onVectorChanged(int vector, long address, int data, boolean masked) {
            }

            @Override
            public void onMessage(int vector, long address, int data) {
            }
        });
        msixRegion = new BusDeviceRegion(msix);
        addVirtioCapability(VIRTIO_PCI_CAP_COMMON_CFG, COMMON_CFG_OFFSET, COMMON_CFG_SIZE, -1);
        addVirtioCapability(VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFFSET, NOTIFY_OFF_MULTIPLIER, NOTIFY_OFF_MULTIPLIER);
        addVirtioCapability(VIRTIO_PCI_CAP_ISR_CFG, ISR_OFFSET, 1, -1);
        addVirtioCapability(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG_OFFSET, DEVICE_CFG_SIZE, -1);
        pciCfgCapability = addPciCfgCapability();

        device = VfioUserDevice.builder(function)
                .bar(VIRTIO_BAR, new RegionHandler() {
                    @Override
                    public void read(long offset, byte[] into) {
                        virtioBarRead((int) offset, into);
                    }

                    @Override
                    public void write(long offset, byte[] data) {
                        virtioBarWrite((int) offset, data);
                    }
                })
                .bar(MSIX_BAR, msixRegion)
                .irqs(VfioUserDevice.IRQ_INTX, 1)
                .irqs(VfioUserDevice.IRQ_MSIX, MSIX_VECTORS)
                .onReset(this::functionReset)
                .onDisconnect(this::functionReset)
                .dmaByMessages(options.dmaByMessages())
                .build();
        functionReset();
    }

    /**
     * struct virtio_pci_cap (4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
     * le32 offset, le32 length; the notify capability adds le32 notify_off_multiplier (4.1.4.4).
     * Read-only to the driver.
     */
    private void addVirtioCapability(int cfgType, int offset, int length, int notifyOffMultiplier) {
        int capLen = notifyOffMultiplier >= 0 ? 20 : 16;
        ByteBuffer body = ByteBuffer.allocate(capLen - 2).order(ByteOrder.LITTLE_ENDIAN);
        body.put(0, (byte) capLen).put(1, (byte) cfgType).put(2, (byte) VIRTIO_BAR).putInt(6, offset).putInt(10, length);
        if (notifyOffMultiplier >= 0) {
            body.putInt(14, notifyOffMultiplier);
        }
        config.addCapability(PCI_CAP_ID_VNDR, body.array());
    }

    /**
     * struct virtio_pci_cfg_cap (4.1.4.7): a virtio_pci_cap whose bar, offset and length the driver
     * writes, then le32 pci_cfg_data: reading or writing it reads or writes {@code length} (1, 2, 4)
     * bytes of that BAR at that offset, a way to the BARs through configuration space alone
     * ("The device MUST present at least one VIRTIO_PCI_CAP_PCI_CFG capability").
     */
    private int addPciCfgCapability() {
        byte[] body = new byte[18];
        body[0] = 20;
        body[1] = VIRTIO_PCI_CAP_PCI_CFG;
        int at = config.addCapability(PCI_CAP_ID_VNDR, body);
        config.setWritable(at + 4, 1, 0xFF);                // bar
        config.setWritable(at + 8, 4, 0xFFFF_FFFF);         // offset
        config.setWritable(at + 12, 4, 0xFFFF_FFFF);        // length
        config.setWritable(at + 16, 4, 0xFFFF_FFFF);        // pci_cfg_data
        function.addConfigReadHook(at + 16, 4, () -> {
            byte[] data = pciCfgAccess(at);
            if (data != null) {
                barRead(config.get8(at + 4), config.get32(at + 8), data);
                int value = 0;
                for (int i = 0; i < data.length; i++) {
                    value |= (data[i] & 0xFF) << (8 * i);
                }
                config.set32(at + 16, config.get32(at + 16) & (int) (-1L << (8 * data.length)) | value);
            }
        });
        function.addConfigWriteHook(at + 16, 4, () -> {
            byte[] data = pciCfgAccess(at);
            if (data != null) {
                int value = config.get32(at + 16);
                for (int i = 0; i < data.length; i++) {
                    data[i] = (byte) (value >>> (8 * i));
                }
                barWrite(config.get8(at + 4), config.get32(at + 8), data);
            }
        });
        return at;
    }

    /**
     * The access the VIRTIO_PCI_CAP_PCI_CFG capability asks for now: a buffer of cap.length bytes,
     * or null when length is not 1, 2 or 4, offset is not a multiple of it (4.1.4.7.2), or the
     * range is not in one of our BARs.
     */
    private byte[] pciCfgAccess(int cap) {
        int bar = config.get8(cap + 4);
        long offset = Integer.toUnsignedLong(config.get32(cap + 8));
        long length = Integer.toUnsignedLong(config.get32(cap + 12));
        long barSize = bar == VIRTIO_BAR ? VIRTIO_BAR_SIZE : bar == MSIX_BAR ? MSIX_BAR_SIZE : 0;
        if ((length != 1 && length != 2 && length != 4) || offset % length != 0 || offset + length > barSize) {
            LOG.debug("virtio-blk: VIRTIO_PCI_CAP_PCI_CFG access of {} bytes at BAR {} offset 0x{} ignored", length, bar, Long.toHexString(offset));
            return null;
        }
        return new byte[(int) length];
    }

    private void barRead(int bar, int offset, byte[] into) {
        if (bar == VIRTIO_BAR) {
            virtioBarRead(offset, into);
        } else {
            msixRegion.read(offset, into);
        }
    }

    private void barWrite(int bar, int offset, byte[] data) {
        if (bar == VIRTIO_BAR) {
            virtioBarWrite(offset, data);
        } else {
            msixRegion.write(offset, data);
        }
    }

    /** @return the device declaration to serve (configuration space, BAR0, BAR2, INTx, 2 MSI-X vectors) */
    public VfioUserDevice device() {
        return device;
    }

    /**
     * Serves this device on a connected socket: makes the server, hands its DMA and interrupts to
     * the device, starts it. Call once; close the server, then this.
     */
    public synchronized VfioUserServer serve(UnixSocket socket) {
        if (dma != null) {
            throw new IllegalStateException("virtio-blk " + disk + " is already served; make one device per client");
        }
        VfioUserServer server = new VfioUserServer(socket, device);
        dma = server.dma();
        irqs = server.irqs();
        function.connectIntx(irqs::intx);
        server.start();
        return server;
    }

    /** @return capacity in 512-byte sectors */
    public long capacity() {
        return capacity;
    }

    /** @return the device status byte (2.1) */
    public synchronized int status() {
        return status;
    }

    /** @return the features the device offers (bit numbers as in 5.2.3 and 6) */
    public long deviceFeatures() {
        return deviceFeatures;
    }

    @Override
    public void close() {
        try {
            file.close();
        } catch (IOException e) {
            LOG.warn("closing disk image {}: {}", disk, e.toString());
        }
    }

    // ---- Reset (2.1, 4.1.4.3.1) ----

    /** A function reset (DEVICE_RESET) or the client leaving: virtio reset plus the MSI-X table. */
    private synchronized void functionReset() {
        virtioReset();
        for (int v = 0; v < MSIX_VECTORS; v++) {
            long entry = MSIX_TABLE_OFFSET + (long) MsixCapability.ENTRY_SIZE * v;
            msix.write(entry + MsixCapability.ENTRY_LOWER_ADDR, 8, 0);
            msix.write(entry + MsixCapability.ENTRY_DATA, 4, 0);
            msix.write(entry + MsixCapability.ENTRY_VECTOR_CTRL, 4, MsixCapability.ENTRY_CTRL_MASKBIT); // masked (PCI 3.0, 6.8.2.9)
        }
    }

    /** The driver wrote 0 to device_status (or the function was reset): everything back to initial values. */
    private void virtioReset() {
        status = 0;
        deviceFeatureSelect = 0;
        driverFeatureSelect = 0;
        driverFeatures = 0;
        msixConfig = NO_VECTOR;
        queueSelect = 0;
        isr = 0;
        queue.reset();
        updateInterruptStatus();
    }

    // ---- BAR0 ----

    private synchronized void virtioBarRead(int offset, byte[] into) {
        Arrays.fill(into, (byte) 0);
        if (within(offset, into.length, COMMON_CFG_OFFSET, COMMON_CFG_SIZE)) {
            copyOut(commonConfig(), offset - COMMON_CFG_OFFSET, into);
        } else if (within(offset, into.length, ISR_OFFSET, 4)) {
            if (offset == ISR_OFFSET) {
                // 4.1.4.5: "reading ISR status resets it to 0" (and deasserts the level interrupt).
                into[0] = (byte) isr;
                isr = 0;
                updateInterruptStatus();
            }
        } else if (within(offset, into.length, DEVICE_CFG_OFFSET, DEVICE_CFG_SIZE)) {
            copyOut(blkConfig(), offset - DEVICE_CFG_OFFSET, into);
        }
        // Notifications read as 0; the rest of the BAR is reserved.
    }

    private synchronized void virtioBarWrite(int offset, byte[] data) {
        if (within(offset, data.length, COMMON_CFG_OFFSET, COMMON_CFG_SIZE)) {
            commonConfigWrite(offset - COMMON_CFG_OFFSET, data);
        } else if (within(offset, data.length, NOTIFY_OFFSET, NOTIFY_OFF_MULTIPLIER)) {
            // 4.1.5.2: the driver writes the 16-bit queue index to the queue's notify address.
            notifyQueue();
        } else {
            LOG.debug("virtio-blk: write of {} bytes at BAR0 0x{} ignored", data.length, Integer.toHexString(offset));
        }
    }

    private static boolean within(int offset, int length, int start, int size) {
        return offset >= start && offset - start < size;
    }

    /** Copies {@code image[from..]} into {@code into}, zeros past the image's end. */
    private static void copyOut(byte[] image, int from, byte[] into) {
        System.arraycopy(image, from, into, 0, Math.min(into.length, image.length - from));
    }

    /** struct virtio_pci_common_cfg as the driver reads it now (4.1.4.3). */
    private byte[] commonConfig() {
        ByteBuffer b = ByteBuffer.allocate(COMMON_CFG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0x00, deviceFeatureSelect);                                    // device_feature_select
        b.putInt(0x04, featureWord(deviceFeatures, deviceFeatureSelect));       // device_feature
        b.putInt(0x08, driverFeatureSelect);                                    // driver_feature_select
        b.putInt(0x0C, featureWord(driverFeatures, driverFeatureSelect));       // driver_feature
        b.putShort(0x10, (short) msixConfig);                                   // msix_config
        b.putShort(0x12, (short) 1);                                            // num_queues
        b.put(0x14, (byte) status);                                             // device_status
        b.put(0x15, (byte) 0);                                                  // config_generation: config never changes
        b.putShort(0x16, (short) queueSelect);                                  // queue_select
        if (queueSelect == queue.index) {                                       // else: "queue_size 0: unavailable"
            b.putShort(0x18, (short) queue.size);                               // queue_size
            b.putShort(0x1A, (short) queue.msixVector);                         // queue_msix_vector
            b.putShort(0x1C, (short) (queue.enabled ? 1 : 0));                  // queue_enable
            b.putShort(0x1E, (short) queue.index);                              // queue_notify_off
            b.putLong(0x20, queue.desc);                                        // queue_desc
            b.putLong(0x28, queue.driver);                                      // queue_driver
            b.putLong(0x30, queue.device);                                      // queue_device
        }
        return b.array();
    }

    private static int featureWord(long features, int select) {
        return select == 0 ? (int) features : select == 1 ? (int) (features >>> 32) : 0;
    }

    /**
     * A driver write to the common configuration, of any width (4.1.3.1 allows 64-bit fields as two
     * 32-bit halves): the bytes land on the current image, then each writable field they touch takes
     * its new value, in offset order. Read-only fields ignore writes.
     */
    private void commonConfigWrite(int offset, byte[] data) {
        byte[] image = commonConfig();
        int end = Math.min(COMMON_CFG_SIZE, offset + data.length);
        System.arraycopy(data, 0, image, offset, end - offset);
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        int[][] fields = {{0x00, 4}, {0x08, 4}, {0x0C, 4}, {0x10, 2}, {0x14, 1}, {0x16, 2}, {0x18, 2}, {0x1A, 2}, {0x1C, 2},
                {0x20, 8}, {0x28, 8}, {0x30, 8}};
        for (int[] f : fields) {
            if (f[0] < end && offset < f[0] + f[1]) {
                commonFieldWrite(f[0], b);
            }
        }
    }

    private void commonFieldWrite(int field, ByteBuffer b) {
        boolean queueField = field >= 0x18;
        if (queueField && queueSelect != queue.index) {
            return; // no such queue
        }
        switch (field) {
            case 0x00 -> deviceFeatureSelect = b.getInt(field);
            case 0x08 -> driverFeatureSelect = b.getInt(field);
            case 0x0C -> {
                // 3.1.1 step 5: features are written before FEATURES_OK; later writes are ignored.
                if ((status & FEATURES_OK) == 0 && (driverFeatureSelect == 0 || driverFeatureSelect == 1)) {
                    int shift = 32 * driverFeatureSelect;
                    driverFeatures = (driverFeatures & ~(0xFFFFFFFFL << shift)) | ((b.getInt(field) & 0xFFFFFFFFL) << shift);
                }
            }
            case 0x10 -> msixConfig = vector(b.getShort(field) & 0xFFFF);
            case 0x14 -> writeStatus(b.get(field) & 0xFF);
            case 0x16 -> queueSelect = b.getShort(field) & 0xFFFF;
            case 0x18 -> {
                // 4.1.4.3.2 / 2.7: the driver may make the queue smaller; a split queue's size is a power of two.
                int size = b.getShort(field) & 0xFFFF;
                if (size != queue.size && !queue.enabled) {
                    if (size == 0 || size > queue.maxSize || Integer.bitCount(size) != 1) {
                        LOG.warn("virtio-blk: queue_size {} refused (a power of two up to {})", size, queue.maxSize);
                    } else {
                        queue.size = size;
                    }
                }
            }
            case 0x1A -> queue.msixVector = vector(b.getShort(field) & 0xFFFF);
            case 0x1C -> {
                // 4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
                if ((b.getShort(field) & 0xFFFF) == 1 && !queue.enabled) {
                    queue.enable();
                }
            }
            case 0x20 -> queue.desc = queue.enabled ? queue.desc : b.getLong(field);
            case 0x28 -> queue.driver = queue.enabled ? queue.driver : b.getLong(field);
            case 0x30 -> queue.device = queue.enabled ? queue.device : b.getLong(field);
            default -> throw new IllegalStateException("field 0x" + Integer.toHexString(field));
        }
    }

    /** 4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR. */
    private static int vector(int v) {
        return v < MSIX_VECTORS ? v : NO_VECTOR;
    }

    /**
     * device_status (2.1, 3.1.1): 0 resets; FEATURES_OK sticks only when the driver's features are a
     * subset of ours and include VIRTIO_F_VERSION_1 (2.2.2, 6.1); DEVICE_NEEDS_RESET stays until reset.
     */
    private void writeStatus(int value) {
        if (value == 0) {
            LOG.debug("virtio-blk: reset by the driver");
            virtioReset();
            return;
        }
        if ((value & FEATURES_OK) != 0 && (status & FEATURES_OK) == 0) {
            long unknown = driverFeatures & ~deviceFeatures;
            if (unknown != 0 || (driverFeatures & (1L << VIRTIO_F_VERSION_1)) == 0) {
                LOG.warn("virtio-blk: FEATURES_OK refused for driver features 0x{} (offered 0x{})",
                        Long.toHexString(driverFeatures), Long.toHexString(deviceFeatures));
                value &= ~FEATURES_OK;
            }
        }
        status = (value & ~DEVICE_NEEDS_RESET) | (status & DEVICE_NEEDS_RESET);
    }

    /** struct virtio_blk_config (5.2.4): capacity, size_max (0), seg_max, geometry (0), blk_size. */
    private byte[] blkConfig() {
        ByteBuffer b = ByteBuffer.allocate(DEVICE_CFG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(0, capacity);
        b.putInt(12, SEG_MAX);
        b.putInt(20, SECTOR_SIZE);
        return b.array();
    }

    // ---- Interrupts (4.1.4.5, 4.1.5.3, 4.1.5.4) ----

    private boolean msixEnabled() {
        return msix.enabled();
    }

    /**
     * Notifies the driver: with MSI-X on, by {@code vector} (none for NO_VECTOR, or while the
     * function is masked); else by setting {@code isrBit} and signalling INTx. The configuration
     * bit of ISR is set in either case (4.1.4.5.1).
     */
    private void interrupt(int isrBit, int vector) {
        try {
            if (msixEnabled()) {
                if (isrBit == ISR_CONFIG) {
                    isr |= ISR_CONFIG;
                }
                if (vector != NO_VECTOR && !msix.functionMasked() && irqs != null) {
                    irqs.trigger(VfioUserDevice.IRQ_MSIX, vector);
                }
            } else {
                isr |= isrBit;
                updateInterruptStatus();
            }
        } catch (RuntimeException e) {
            LOG.warn("virtio-blk: interrupt not delivered: {}", e.getMessage());
        }
    }

    /**
     * 4.1.4.5.1: without MSI-X, the PCI status Interrupt Status bit is the OR of ISR, and so is the INTx# level
     * (unless the command register's Interrupt Disable bit is set): raised by a used buffer or a configuration
     * change, lowered when the driver reads ISR.
     */
    private void updateInterruptStatus() {
        function.setIntx(isr != 0 && !msixEnabled());
    }

    /** 2.1.2: the device has gone wrong; the driver must reset it. A configuration change notification tells it. */
    private void needsReset(String why) {
        LOG.warn("virtio-blk: DEVICE_NEEDS_RESET: {}", why);
        status |= DEVICE_NEEDS_RESET;
        interrupt(ISR_CONFIG, msixConfig);
    }

    // ---- The request queue (2.7.13 from the device's side, 5.2.6) ----

    /** The driver rang the doorbell: serve every available request, then interrupt once unless suppressed. */
    private void notifyQueue() {
        if ((status & DRIVER_OK) == 0 || (status & DEVICE_NEEDS_RESET) != 0 || !queue.enabled || dma == null) {
            LOG.debug("virtio-blk: notify ignored (status 0x{}, queue enabled {})", Integer.toHexString(status), queue.enabled);
            return;
        }
        try {
            boolean used = false;
            Virtqueue.Chain chain;
            while ((chain = queue.pop(dma)) != null) {
                long written = request(chain);
                queue.push(dma, chain.head(), written);
                used = true;
            }
            if (used && !queue.interruptSuppressed(dma)) {
                interrupt(ISR_QUEUE, queue.msixVector);
            }
        } catch (VirtqueueException | DmaException e) {
            needsReset(e.getMessage());
        }
    }

    /**
     * One request (5.2.6): struct virtio_blk_req {le32 type; le32 reserved; le64 sector;
     * u8 data[]; u8 status}, header device-readable, status the last device-writable byte.
     *
     * @return bytes written into the chain's writable buffers (the used element's len)
     * @throws VirtqueueException when the chain has no writable byte for the status
     * @throws DmaException when the status byte cannot be written
     */
    private long request(Virtqueue.Chain chain) {
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
                gather(slice(readable, 0, REQUEST_HEADER_SIZE), header);
                ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
                type = h.getInt(0);
                sector = h.getLong(8);
                List<Virtqueue.Buffer> out = slice(readable, REQUEST_HEADER_SIZE, readableBytes - REQUEST_HEADER_SIZE);
                switch (type) {
                    case VIRTIO_BLK_T_IN -> {
                        result = transfer(sector, in, false);
                        written += result == VIRTIO_BLK_S_OK ? writableBytes - 1 : 0;
                    }
                    case VIRTIO_BLK_T_OUT -> result = options.readOnly() ? VIRTIO_BLK_S_IOERR : transfer(sector, out, true);
                    case VIRTIO_BLK_T_FLUSH -> {
                        file.force(true);
                        result = VIRTIO_BLK_S_OK;
                    }
                    case VIRTIO_BLK_T_GET_ID -> {
                        byte[] id = Arrays.copyOf(options.serial().getBytes(StandardCharsets.US_ASCII), VIRTIO_BLK_ID_BYTES);
                        long n = Math.min(VIRTIO_BLK_ID_BYTES, writableBytes - 1);
                        scatter(slice(in, 0, n), id);
                        written += n;
                        result = VIRTIO_BLK_S_OK;
                    }
                    default -> result = VIRTIO_BLK_S_UNSUPP;
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
    private int transfer(long sector, List<Virtqueue.Buffer> data, boolean toFile) throws IOException {
        long bytes = data.stream().mapToLong(Virtqueue.Buffer::len).sum();
        // 5.2.6.1: data is a multiple of 512 bytes; 5.2.6.2: the range must lie within capacity.
        if (bytes % SECTOR_SIZE != 0 || Long.compareUnsigned(sector, capacity) > 0 || bytes / SECTOR_SIZE > capacity - sector) {
            LOG.warn("virtio-blk: {} of {} bytes at sector {} refused (capacity {} sectors)", toFile ? "write" : "read", bytes, Long.toUnsignedString(sector), capacity);
            return VIRTIO_BLK_S_IOERR;
        }
        long position = sector * SECTOR_SIZE;
        for (Virtqueue.Buffer b : data) {
            for (long done = 0; done < b.len(); ) {
                int n = (int) Math.min(chunk.length, b.len() - done);
                ByteBuffer bb = ByteBuffer.wrap(chunk, 0, n);
                MemorySegment part = MemorySegment.ofArray(chunk).asSlice(0, n);
                if (toFile) {
                    dma.read(b.addr() + done, part);
                    while (bb.hasRemaining()) {
                        file.write(bb, position + bb.position());
                    }
                } else {
                    while (bb.hasRemaining()) {
                        if (file.read(bb, position + bb.position()) < 0) {
                            throw new IOException("disk image " + disk + " ended before byte " + (position + bb.position()));
                        }
                    }
                    dma.write(b.addr() + done, part);
                }
                done += n;
                position += n;
            }
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

    private void gather(List<Virtqueue.Buffer> buffers, byte[] into) {
        int at = 0;
        for (Virtqueue.Buffer b : buffers) {
            byte[] part = new byte[(int) b.len()];
            dma.read(b.addr(), part);
            System.arraycopy(part, 0, into, at, part.length);
            at += part.length;
        }
    }

    private void scatter(List<Virtqueue.Buffer> buffers, byte[] from) {
        int at = 0;
        for (Virtqueue.Buffer b : buffers) {
            dma.write(b.addr(), Arrays.copyOfRange(from, at, at + (int) b.len()));
            at += (int) b.len();
        }
    }
}
