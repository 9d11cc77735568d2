package dev.panamax.core.bus;

/**
 * A device model as a bus sees it: reads and writes of 1, 2, 4 or 8 bytes at an offset into the
 * range it was registered at. Values are little-endian, in the low {@code size} bytes of the long.
 * Called on vCPU threads; a device guards its own state.
 */
public interface BusDevice {
    /**
     * @param offset byte offset from the start of the device's range
     * @param size   access width in bytes: 1, 2, 4 or 8
     * @return the value read (only the low {@code size} bytes count)
     */
    long read(long offset, int size);

    /**
     * @param offset byte offset from the start of the device's range
     * @param size   access width in bytes: 1, 2, 4 or 8
     * @param value  the value written, in the low {@code size} bytes
     */
    void write(long offset, int size, long value);
}
