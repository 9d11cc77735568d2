package dev.panamax.core.state;

/**
 * A device model whose registers go into a snapshot and come back from one (issue 17): the UART, the i8042, the CMOS
 * clock, the ACPI PM registers, the PCI bus's emulated functions. The bytes are the model's own versioned encoding,
 * opaque to the snapshot writer, which stores them under the model's name.
 *
 * <p>Restoring trusts nothing: the bytes come from a file anyone may have edited. A short, long, future-versioned or
 * out-of-range state is a {@link StateException} that leaves the model as it was, never a half-restored model.
 */
public interface Snapshottable {
    /**
     * @return the model's state now, called with the vCPUs paused (no guest access runs concurrently)
     */
    byte[] saveState();

    /**
     * Puts the model back into {@code state}, before any vCPU runs.
     *
     * @throws StateException if {@code state} is not one this model's {@link #saveState()} can have written
     */
    void restoreState(byte[] state);
}
