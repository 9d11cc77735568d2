package dev.panamax.virtio;

/**
 * The driver broke the virtqueue rules (virtio 1.2, 2.7 "Split Virtqueues"): a descriptor index
 * beyond the queue size, a chain longer than the queue (a loop), a device-readable descriptor after
 * a device-writable one, a misaligned ring. The device answers by setting DEVICE_NEEDS_RESET
 * (2.1.2), not by failing the server.
 */
public class VirtqueueException extends RuntimeException {
    public VirtqueueException(String message) {
        super(message);
    }
}
