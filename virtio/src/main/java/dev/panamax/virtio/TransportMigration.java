package dev.panamax.virtio;

import dev.panamax.pci.MsixCapability;
import dev.panamax.vfiouser.server.MigratableDevice;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static dev.panamax.virtio.Virtqueue.NO_VECTOR;
import static dev.panamax.virtio.VirtioDevice.*;

/**
 * Migration of a {@link VirtioPciTransport} and its {@link VirtioDevice} (migration v2 over vfio-user:
 * {@link MigratableDevice}). STOP quiesces the queues ({@link VirtioPciTransport#stopQueues}: doorbells are remembered,
 * not served), RUNNING serves what rang meanwhile. The state is the transport's, then the device type's; the PCI
 * configuration space is not in it (the VMM keeps it), nor are disk contents (the file is shared).
 *
 * <p>Format, version 1, all little-endian; offsets in bytes:
 * <pre>
 *  header, 16 bytes
 *    0 le32 magic 0x53565850 ("PXVS")   4 le16 version (1)   6 le16 num_queues
 *    8 le16 msix_vectors                10 le16 reserved (0) 12 le32 device_state_length
 *  common configuration (virtio 1.2, 4.1.4.3) and ISR (4.1.4.5), 32 bytes, at 16
 *   16 u8 device_status   17 u8 config_generation   18 le16 msix_config
 *   20 le32 device_feature_select   24 le32 driver_feature_select
 *   28 le16 queue_select   30 u8 isr   31 u8 reserved (0)
 *   32 le64 driver_features (negotiated)   40 le64 device_features (offered by the source)
 *  per queue, 40 bytes each, at 48 (2.7, 4.1.4.3)
 *    0 le16 queue_size   2 le16 queue_msix_vector   4 u8 queue_enable   5 u8 notify_pending   6 le16 reserved (0)
 *    8 le64 queue_desc   16 le64 queue_driver   24 le64 queue_device   (guest-physical DMA addresses)
 *   32 le16 last_avail_idx (chains the device took)   34 le16 used_idx (the device's used ring idx)   36 le32 reserved (0)
 *  MSI-X table, msix_vectors entries of 16 bytes (PCI 3.0, 6.8.2: le64 address, le32 data, le32 vector control)
 *  device state, device_state_length bytes ({@link VirtioDevice#saveState})
 * </pre>
 * {@link #loadState} refuses (IllegalArgumentException, the device unchanged) bytes of another magic or version,
 * other lengths, a queue count, vector count or offered features other than this device's, a queue size that is not a
 * power of two up to the device's maximum, a vector beyond the table, reserved bits or bytes set, a disabled queue with
 * indexes, an enabled one with a request taken but not returned (unless the device was already DEVICE_NEEDS_RESET),
 * and whatever the device type refuses.
 */
final class TransportMigration implements MigratableDevice {
    /** "PXVS" read as le32. */
    static final int MAGIC = 0x53565850;
    static final int VERSION = 1;
    static final int HEADER_SIZE = 16;
    static final int COMMON_SIZE = 32;
    static final int QUEUE_SIZE = 40;
    static final int MSIX_ENTRY_SIZE = MsixCapability.ENTRY_SIZE;
    /** Device status bits defined by 2.1; 16 and 32 are reserved. */
    private static final int STATUS_BITS = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | DEVICE_NEEDS_RESET | FAILED;
    private static final int ISR_BITS = VirtioPciTransport.ISR_QUEUE | VirtioPciTransport.ISR_CONFIG;

    private final VirtioPciTransport t;

    TransportMigration(VirtioPciTransport transport) {
        this.t = transport;
    }

    @Override
    public void stop() {
        t.stopQueues();
    }

    @Override
    public void resume() {
        t.resumeQueues();
    }

    @Override
    public byte[] saveState() {
        synchronized (t.lock()) {
            CommonConfig c = t.common;
            byte[] dev = t.device.saveState();
            int vectors = t.msix.vectors();
            ByteBuffer b = ByteBuffer.allocate(size(t.queues.length, vectors, dev.length)).order(ByteOrder.LITTLE_ENDIAN);
            b.putInt(MAGIC).putShort((short) VERSION).putShort((short) t.queues.length).putShort((short) vectors)
                    .putShort((short) 0).putInt(dev.length);
            b.put((byte) c.status).put((byte) 0).putShort((short) c.msixConfig) // config_generation: the config never changes
                    .putInt(c.deviceFeatureSelect()).putInt(c.driverFeatureSelect())
                    .putShort((short) c.queueSelect()).put((byte) t.isr).put((byte) 0)
                    .putLong(c.driverFeatures()).putLong(c.deviceFeatures());
            for (Virtqueue q : t.queues) {
                b.putShort((short) q.size).putShort((short) q.msixVector).put((byte) (q.enabled ? 1 : 0))
                        .put((byte) (t.notifyPending[q.index] ? 1 : 0)).putShort((short) 0)
                        .putLong(q.desc).putLong(q.driver).putLong(q.device)
                        .putShort((short) q.lastAvailIdx()).putShort((short) q.usedIdx()).putInt(0);
            }
            for (int v = 0; v < vectors; v++) {
                for (int dw = 0; dw < MSIX_ENTRY_SIZE; dw += 4) {
                    b.putInt((int) t.msix.read(tableOffset(v) + dw, 4));
                }
            }
            b.put(dev);
            return b.array();
        }
    }

    /** @return bytes of a version-1 state with these counts */
    static int size(int queues, int vectors, int deviceStateLength) {
        return HEADER_SIZE + COMMON_SIZE + QUEUE_SIZE * queues + MSIX_ENTRY_SIZE * vectors + deviceStateLength;
    }

    private static long tableOffset(int vector) {
        return VirtioPciTransport.MSIX_TABLE_OFFSET + (long) MsixCapability.ENTRY_SIZE * vector;
    }

    /** One queue's saved fields. */
    private record QueueState(int size, int vector, boolean enabled, boolean pending, long desc, long driver, long device,
                              int lastAvail, int used) {
    }

    @Override
    public void loadState(byte[] state) {
        synchronized (t.lock()) {
            try {
                load(ByteBuffer.wrap(state).order(ByteOrder.LITTLE_ENDIAN), state.length);
            } catch (BufferUnderflowException e) {
                throw new IllegalArgumentException("virtio state truncated: " + state.length + " bytes");
            }
        }
    }

    private void load(ByteBuffer b, int length) {
        String name = t.device.name();
        int magic = b.getInt();
        if (magic != MAGIC) {
            throw new IllegalArgumentException(String.format("%s state: magic 0x%08x, expected 0x%08x (\"PXVS\")", name, magic, MAGIC));
        }
        int version = b.getShort() & 0xFFFF;
        if (version != VERSION) {
            throw new IllegalArgumentException(name + " state: version " + version + ", this device reads version " + VERSION);
        }
        int numQueues = b.getShort() & 0xFFFF;
        int vectors = b.getShort() & 0xFFFF;
        int reserved = b.getShort() & 0xFFFF;
        long devLength = b.getInt() & 0xFFFFFFFFL;
        if (numQueues != t.queues.length || vectors != t.msix.vectors() || reserved != 0) {
            throw new IllegalArgumentException(name + " state: " + numQueues + " queues and " + vectors + " MSI-X vectors, this device has "
                    + t.queues.length + " and " + t.msix.vectors() + (reserved != 0 ? " (reserved header bytes set)" : ""));
        }
        long expected = size(numQueues, vectors, 0) + devLength;
        if (expected != length) {
            throw new IllegalArgumentException(name + " state: " + length + " bytes, the header says " + expected
                    + (length < expected ? " (truncated)" : ""));
        }
        int status = b.get() & 0xFF;
        int generation = b.get() & 0xFF;
        int msixConfig = b.getShort() & 0xFFFF;
        int deviceFeatureSelect = b.getInt();
        int driverFeatureSelect = b.getInt();
        int queueSelect = b.getShort() & 0xFFFF;
        int isr = b.get() & 0xFF;
        int reserved2 = b.get() & 0xFF;
        long driverFeatures = b.getLong();
        long offered = b.getLong();
        long ours = t.common.deviceFeatures();
        check((status & ~STATUS_BITS) == 0, name + " state: device_status 0x" + Integer.toHexString(status) + " has reserved bits");
        check(generation == 0, name + " state: config_generation " + generation + ", this device's is 0");
        check(validVector(msixConfig, vectors), name + " state: msix_config " + msixConfig + " is beyond the " + vectors + " vectors");
        check((isr & ~ISR_BITS) == 0 && reserved2 == 0, name + " state: ISR 0x" + Integer.toHexString(isr) + " or reserved byte set");
        check(offered == ours, String.format("%s state: the source offered features 0x%x, this device offers 0x%x", name, offered, ours));
        check((driverFeatures & ~ours) == 0, String.format("%s state: driver features 0x%x are not all offered (0x%x)", name, driverFeatures, ours));
        check((status & FEATURES_OK) == 0 || (driverFeatures & (1L << VIRTIO_F_VERSION_1)) != 0,
                name + " state: FEATURES_OK without VIRTIO_F_VERSION_1");
        QueueState[] qs = new QueueState[numQueues];
        for (int i = 0; i < numQueues; i++) {
            int size = b.getShort() & 0xFFFF;
            int vector = b.getShort() & 0xFFFF;
            boolean enabled = flag(b.get(), name, i, "queue_enable");
            boolean pending = flag(b.get(), name, i, "notify_pending");
            int r = b.getShort();
            QueueState q = new QueueState(size, vector, enabled, pending, b.getLong(), b.getLong(), b.getLong(),
                    b.getShort() & 0xFFFF, b.getShort() & 0xFFFF);
            r |= b.getInt();
            String at = name + " state: queue " + i + ": ";
            int max = t.queues[i].maxSize;
            check(r == 0, at + "reserved bytes set");
            check(q.size >= 1 && q.size <= max && Integer.bitCount(q.size) == 1, at + "queue_size " + q.size + " is not a power of two up to " + max);
            check(validVector(q.vector, vectors), at + "queue_msix_vector " + q.vector + " is beyond the " + vectors + " vectors");
            if (!q.enabled) {
                check(q.lastAvail == 0 && q.used == 0 && !q.pending, at + "disabled, yet indexes " + q.lastAvail + "/" + q.used + " or a pending doorbell");
            } else {
                int outstanding = (q.lastAvail - q.used) & 0xFFFF;
                check(outstanding == 0 || ((status & DEVICE_NEEDS_RESET) != 0 && outstanding <= q.size),
                        at + "last_avail_idx " + q.lastAvail + " and used idx " + q.used + ": a request taken and not returned");
            }
            qs[i] = q;
        }
        long[] table = new long[vectors * MSIX_ENTRY_SIZE / 4];
        for (int i = 0; i < table.length; i++) {
            table[i] = b.getInt() & 0xFFFFFFFFL;
        }
        byte[] dev = new byte[(int) devLength];
        b.get(dev);
        // The device type checks its part (and applies it only when it is good); nothing has changed before this.
        t.device.loadState(dev);
        t.common.restore(deviceFeatureSelect, driverFeatureSelect, driverFeatures, msixConfig, status, queueSelect);
        for (int i = 0; i < numQueues; i++) {
            QueueState q = qs[i];
            t.queues[i].restore(q.size, q.vector, q.enabled, q.desc, q.driver, q.device, q.lastAvail, q.used);
            t.notifyPending[i] = q.pending;
        }
        for (int v = 0; v < vectors; v++) {
            for (int dw = 0; dw < MSIX_ENTRY_SIZE; dw += 4) {
                t.msix.write(tableOffset(v) + dw, 4, table[v * 4 + dw / 4]);
            }
        }
        t.isr = isr;
        t.updateInterruptStatus();
    }

    private static boolean validVector(int v, int vectors) {
        return v == NO_VECTOR || v < vectors;
    }

    private static boolean flag(byte value, String name, int queue, String field) {
        check(value == 0 || value == 1, name + " state: queue " + queue + ": " + field + " " + (value & 0xFF) + " is neither 0 nor 1");
        return value == 1;
    }

    private static void check(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException(message);
        }
    }
}
