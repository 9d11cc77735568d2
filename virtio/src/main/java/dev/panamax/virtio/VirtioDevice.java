package dev.panamax.virtio;

import dev.panamax.vfiouser.server.DeviceDma;

/**
 * A virtio device type (virtio 1.2, 5 "Device Types") as the {@link VirtioPciTransport} drives it: its ID,
 * feature bits, device-specific configuration and what it does when the driver notifies a queue. The transport
 * owns everything common to virtio devices on PCI (4.1): the PCI function, the common configuration with status
 * and feature negotiation (2.1, 2.2, 3.1), the virtqueues (2.7), notifications, ISR and interrupts. The transport
 * calls these methods with its lock held, on the thread serving the driver's access.
 *
 * <p>The constants are the device-independent ones: device status bits (2.1) and reserved feature bits (6).
 */
public interface VirtioDevice {
    // ---- Device status (2.1) ----
    int ACKNOWLEDGE = 1;
    int DRIVER = 2;
    int DRIVER_OK = 4;
    int FEATURES_OK = 8;
    int DEVICE_NEEDS_RESET = 64;
    int FAILED = 128;

    // ---- Reserved feature bits (6) ----
    int VIRTIO_F_RING_INDIRECT_DESC = 28;
    int VIRTIO_F_RING_EVENT_IDX = 29;
    int VIRTIO_F_VERSION_1 = 32;
    int VIRTIO_F_ACCESS_PLATFORM = 33;

    /** @return a short name for logs, e.g. "virtio-blk" */
    String name();

    /** @return the virtio device ID (5: 2 for a block device); the PCI device ID is 0x1040 plus it (4.1.2.1) */
    int deviceId();

    /** @return the PCI class code, 24 bits: base class, sub-class, programming interface (e.g. 0x010000) */
    int pciClassCode();

    /**
     * @return the device-type feature bits offered (bit numbers as in 5.x.3); the transport adds
     *         VIRTIO_F_VERSION_1 and VIRTIO_F_RING_INDIRECT_DESC
     */
    long features();

    /** @return the largest size of each virtqueue, one entry per queue: powers of two (2.7) */
    int[] queueMaxSizes();

    /**
     * @return the device-specific configuration structure (5.x.4) as the driver reads it now, little-endian;
     *         its length is the size of the VIRTIO_PCI_CAP_DEVICE_CFG structure (4.1.4.6) and must not change
     */
    byte[] config();

    /**
     * A driver write to the device-specific configuration; by default ignored (read-only fields).
     *
     * @param offset byte offset into the structure
     * @param data   the bytes written
     */
    default void writeConfig(int offset, byte[] data) {
    }

    /**
     * The driver notified {@code queue} (4.1.5.2): take the chains it made available ({@link Virtqueue#pop}), serve
     * them, and return them ({@link Virtqueue#push}).
     *
     * @param dma reaches driver memory by DMA address
     * @return true when buffers were used: the transport then interrupts the driver unless it suppressed that
     * @throws VirtqueueException when the driver broke the ring rules (the transport sets DEVICE_NEEDS_RESET)
     * @throws dev.panamax.vfiouser.server.DmaException when a ring lies outside DMA-mapped memory (likewise)
     */
    boolean queueNotified(Virtqueue queue, DeviceDma dma);

    /** The device was reset (2.4): back to its initial state. The transport resets the queues itself. */
    default void reset() {
    }

    /**
     * Migration: the device type's own state (beyond what the transport saves: common configuration, queues, ISR,
     * MSI-X table), called with the device quiesced. By default none.
     *
     * @return bytes in the device's own documented format; carried inside the transport's state
     */
    default byte[] saveState() {
        return new byte[0];
    }

    /**
     * Migration: takes what {@link #saveState} made on the source. Checks everything before changing anything: a
     * refusal leaves the device as it was. By default only an empty state is accepted.
     *
     * @throws IllegalArgumentException when the bytes are not this device's state, or describe another device (say,
     *                                  another disk capacity), naming the mismatch
     */
    default void loadState(byte[] state) {
        if (state.length != 0) {
            throw new IllegalArgumentException(name() + ": " + state.length + " bytes of device state, expected none");
        }
    }
}
