package dev.panamax.virtio;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static dev.panamax.virtio.Virtqueue.NO_VECTOR;
import static dev.panamax.virtio.VirtioDevice.DEVICE_NEEDS_RESET;
import static dev.panamax.virtio.VirtioDevice.FEATURES_OK;
import static dev.panamax.virtio.VirtioDevice.VIRTIO_F_VERSION_1;

/**
 * The common configuration structure, struct virtio_pci_common_cfg (virtio 1.2, 4.1.4.3), with the state behind
 * it: feature selection and negotiation (2.2, 3.1.1), the device status (2.1) and the selected queue's fields.
 * Part of {@link VirtioPciTransport}; not thread-safe (the transport holds its lock).
 *
 * <pre>
 * 0x00 le32 device_feature_select   0x04 le32 device_feature (RO)   0x08 le32 driver_feature_select
 * 0x0C le32 driver_feature          0x10 le16 msix_config           0x12 le16 num_queues (RO)
 * 0x14 u8 device_status             0x15 u8 config_generation (RO)  0x16 le16 queue_select
 * 0x18 le16 queue_size              0x1A le16 queue_msix_vector     0x1C le16 queue_enable
 * 0x1E le16 queue_notify_off (RO)   0x20 le64 queue_desc            0x28 le64 queue_driver   0x30 le64 queue_device
 * </pre>
 */
final class CommonConfig {
    private static final Logger LOG = LoggerFactory.getLogger(CommonConfig.class);
    /** struct virtio_pci_common_cfg up to queue_device, bytes. */
    static final int SIZE = 0x38;
    static final int DEVICE_STATUS = 0x14;
    /** The writable fields as {offset, width}, in offset order. */
    private static final int[][] WRITABLE = {{0x00, 4}, {0x08, 4}, {0x0C, 4}, {0x10, 2}, {0x14, 1}, {0x16, 2}, {0x18, 2},
            {0x1A, 2}, {0x1C, 2}, {0x20, 8}, {0x28, 8}, {0x30, 8}};

    private final String name;
    private final long deviceFeatures;
    private final Virtqueue[] queues;
    private final int msixVectors;
    /** Called when the driver writes 0 to device_status. */
    private final Runnable onReset;

    private int deviceFeatureSelect;
    private int driverFeatureSelect;
    private long driverFeatures;
    int msixConfig;
    int status;
    private int queueSelect;

    CommonConfig(String name, long deviceFeatures, Virtqueue[] queues, int msixVectors, Runnable onReset) {
        this.name = name;
        this.deviceFeatures = deviceFeatures;
        this.queues = queues;
        this.msixVectors = msixVectors;
        this.onReset = onReset;
        reset();
    }

    /** Back to initial values (the queues are reset by the transport). */
    void reset() {
        status = 0;
        deviceFeatureSelect = 0;
        driverFeatureSelect = 0;
        driverFeatures = 0;
        msixConfig = NO_VECTOR;
        queueSelect = 0;
    }

    /** @return the features the driver accepted so far */
    long driverFeatures() {
        return driverFeatures;
    }

    /** @return the offered features (device features plus the transport's) */
    long deviceFeatures() {
        return deviceFeatures;
    }

    int deviceFeatureSelect() {
        return deviceFeatureSelect;
    }

    int driverFeatureSelect() {
        return driverFeatureSelect;
    }

    int queueSelect() {
        return queueSelect;
    }

    /** Migration ({@link TransportMigration}): takes fields already validated, without the side effects of a driver write. */
    void restore(int deviceFeatureSelect, int driverFeatureSelect, long driverFeatures, int msixConfig, int status, int queueSelect) {
        this.deviceFeatureSelect = deviceFeatureSelect;
        this.driverFeatureSelect = driverFeatureSelect;
        this.driverFeatures = driverFeatures;
        this.msixConfig = msixConfig;
        this.status = status;
        this.queueSelect = queueSelect;
    }

    /** @return the queue queue_select names, or null when the device has no such queue */
    private Virtqueue selected() {
        return queueSelect < queues.length ? queues[queueSelect] : null;
    }

    /** @return struct virtio_pci_common_cfg as the driver reads it now */
    byte[] image() {
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0x00, deviceFeatureSelect);                                    // device_feature_select
        b.putInt(0x04, featureWord(deviceFeatures, deviceFeatureSelect));       // device_feature
        b.putInt(0x08, driverFeatureSelect);                                    // driver_feature_select
        b.putInt(0x0C, featureWord(driverFeatures, driverFeatureSelect));       // driver_feature
        b.putShort(0x10, (short) msixConfig);                                   // msix_config
        b.putShort(0x12, (short) queues.length);                                // num_queues
        b.put(DEVICE_STATUS, (byte) status);                                    // device_status
        b.put(0x15, (byte) 0);                                                  // config_generation: config never changes
        b.putShort(0x16, (short) queueSelect);                                  // queue_select
        Virtqueue q = selected();
        if (q != null) {                                                        // else: "queue_size 0: unavailable"
            b.putShort(0x18, (short) q.size);                                   // queue_size
            b.putShort(0x1A, (short) q.msixVector);                             // queue_msix_vector
            b.putShort(0x1C, (short) (q.enabled ? 1 : 0));                      // queue_enable
            b.putShort(0x1E, (short) q.index);                                  // queue_notify_off
            b.putLong(0x20, q.desc);                                            // queue_desc
            b.putLong(0x28, q.driver);                                          // queue_driver
            b.putLong(0x30, q.device);                                          // queue_device
        }
        return b.array();
    }

    private static int featureWord(long features, int select) {
        return select == 0 ? (int) features : select == 1 ? (int) (features >>> 32) : 0;
    }

    /**
     * A driver write of any width (4.1.3.1 allows 64-bit fields as two 32-bit halves): the bytes land on the
     * current image, then each writable field they touch takes its new value, in offset order. Read-only fields
     * ignore writes.
     *
     * @param offset byte offset into the structure, below {@link #SIZE}
     */
    void write(int offset, byte[] data) {
        byte[] image = image();
        int end = Math.min(SIZE, offset + data.length);
        System.arraycopy(data, 0, image, offset, end - offset);
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        for (int[] f : WRITABLE) {
            if (f[0] < end && offset < f[0] + f[1]) {
                fieldWrite(f[0], b);
            }
        }
    }

    private void fieldWrite(int field, ByteBuffer b) {
        Virtqueue q = selected();
        if (field >= 0x18 && q == null) {
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
                if (size != q.size && !q.enabled) {
                    if (size == 0 || size > q.maxSize || Integer.bitCount(size) != 1) {
                        LOG.warn("{}: queue_size {} refused (a power of two up to {})", name, size, q.maxSize);
                    } else {
                        q.size = size;
                    }
                }
            }
            case 0x1A -> q.msixVector = vector(b.getShort(field) & 0xFFFF);
            case 0x1C -> {
                // 4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable."
                if ((b.getShort(field) & 0xFFFF) == 1 && !q.enabled) {
                    q.enable();
                }
            }
            case 0x20 -> q.desc = q.enabled ? q.desc : b.getLong(field);
            case 0x28 -> q.driver = q.enabled ? q.driver : b.getLong(field);
            case 0x30 -> q.device = q.enabled ? q.device : b.getLong(field);
            default -> throw new IllegalStateException("field 0x" + Integer.toHexString(field));
        }
    }

    /** 4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR. */
    private int vector(int v) {
        return v < msixVectors ? v : NO_VECTOR;
    }

    /**
     * device_status (2.1, 3.1.1): 0 resets; FEATURES_OK sticks only when the driver's features are a
     * subset of ours and include VIRTIO_F_VERSION_1 (2.2.2, 6.1); DEVICE_NEEDS_RESET stays until reset.
     */
    private void writeStatus(int value) {
        if (value == 0) {
            LOG.debug("{}: reset by the driver", name);
            onReset.run();
            return;
        }
        if ((value & FEATURES_OK) != 0 && (status & FEATURES_OK) == 0) {
            long unknown = driverFeatures & ~deviceFeatures;
            if (unknown != 0 || (driverFeatures & (1L << VIRTIO_F_VERSION_1)) == 0) {
                LOG.warn("{}: FEATURES_OK refused for driver features 0x{} (offered 0x{})",
                        name, Long.toHexString(driverFeatures), Long.toHexString(deviceFeatures));
                value &= ~FEATURES_OK;
            }
        }
        status = (value & ~DEVICE_NEEDS_RESET) | (status & DEVICE_NEEDS_RESET);
    }
}
