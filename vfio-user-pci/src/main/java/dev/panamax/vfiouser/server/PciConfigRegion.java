package dev.panamax.vfiouser.server;

import dev.panamax.pci.PciFunction;

/**
 * A served device's PCI configuration space as vfio region {@code VFIO_PCI_CONFIG_REGION_INDEX}
 * ({@code <linux/vfio.h>}, {@code vfio_h}): the client's REGION_READ / REGION_WRITE reach the function's
 * {@link PciFunction#configRead} and {@link PciFunction#configWrite} (pci-bus's model: write masks, RW1C bits,
 * BAR sizing, capabilities and their hooks), split into naturally aligned 1, 2 and 4-byte accesses as a CPU's
 * configuration mechanism makes them (PCI 3.0, 3.2.2.3.2). An access is atomic: it holds the function's lock.
 */
public final class PciConfigRegion implements RegionHandler {
    private final PciFunction function;

    /** @param function the device's PCI function; its config space size (256 or 4096 bytes) is the region's */
    public PciConfigRegion(PciFunction function) {
        this.function = function;
    }

    /** @return the PCI function served */
    public PciFunction function() {
        return function;
    }

    /** @return the region's size in bytes: the config space's */
    public int size() {
        return function.config().size();
    }

    @Override
    public void read(long offset, byte[] into) {
        synchronized (function.lock()) {
            NaturalAccesses.split(offset, into.length, 4, (at, width, i) ->
                    NaturalAccesses.put(into, i, width, function.configRead((int) at, width)));
        }
    }

    @Override
    public void write(long offset, byte[] data) {
        synchronized (function.lock()) {
            NaturalAccesses.split(offset, data.length, 4, (at, width, i) ->
                    function.configWrite((int) at, width, (int) NaturalAccesses.get(data, i, width)));
        }
    }
}
