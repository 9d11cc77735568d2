package dev.panamax.vfiouser.server;

import dev.panamax.core.bus.BusDevice;

/**
 * A trapped region served by a {@link BusDevice} (offsets from the region's start), e.g. a BAR holding
 * pci-bus's {@link dev.panamax.pci.MsixCapability} table and PBA: each client access becomes the naturally
 * aligned 1, 2, 4 and 8-byte accesses a CPU would make.
 */
public final class BusDeviceRegion implements RegionHandler {
    private final BusDevice device;

    public BusDeviceRegion(BusDevice device) {
        this.device = device;
    }

    @Override
    public void read(long offset, byte[] into) {
        NaturalAccesses.split(offset, into.length, 8, (at, width, i) -> NaturalAccesses.put(into, i, width, device.read(at, width)));
    }

    @Override
    public void write(long offset, byte[] data) {
        NaturalAccesses.split(offset, data.length, 8, (at, width, i) -> device.write(at, width, NaturalAccesses.get(data, i, width)));
    }
}
