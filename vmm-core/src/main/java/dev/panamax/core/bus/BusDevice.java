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

    /**
     * Names what an access touches, in the device's own terms (its datasheet's register names), for
     * {@code --trace}: e.g. {@code "LSR"} for a 16550's offset 5, or {@code "CONFIG_DATA 00:03.0 BAR0"}.
     * Called only while the bus's trace logger is on, never on the fast path; for a read after it was done
     * ({@code value} is what it returned), for a write before ({@code value} is what will be written), so a
     * device may look at its own state (an index register, a DLAB bit) as the access sees it.
     *
     * @param offset byte offset from the start of the device's range
     * @param size   access width in bytes
     * @param write  true for a write
     * @param value  the value read or to be written, in the low {@code size} bytes
     * @return the register's name, or null if the device has none to give (the default)
     */
    default String describe(long offset, int size, boolean write, long value) {
        return null;
    }
}
