package dev.panamax.pci;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link BarListener} that registers a BAR's region ({@link PciFunction#region}) on the machine's PIO bus
 * (I/O BARs) or MMIO bus (memory BARs) while the BAR decodes, and unregisters it when it stops. BARs without a
 * region are left to other listeners.
 */
public final class BusBarMapper implements BarListener {
    private static final Logger log = LoggerFactory.getLogger(BusBarMapper.class);
    private final Bus pio;
    private final Bus mmio;

    /**
     * @param pio  the port I/O bus
     * @param mmio the MMIO bus (guest-physical addresses)
     */
    public BusBarMapper(Bus pio, Bus mmio) {
        this.pio = pio;
        this.mmio = mmio;
    }

    @Override
    public void barMapped(PciFunction function, int index, PciBar bar, long address) {
        BusDevice region = function.region(index);
        if (region == null) {
            return;
        }
        log.debug("{} BAR {} ({}, 0x{} bytes) mapped at 0x{}", function.name(), index, bar.kind(),
                Long.toHexString(bar.size()), Long.toHexString(address));
        // Bus.register throws on overlap: the guest placed two BARs on top of each other.
        (bar.isIo() ? pio : mmio).register(address, bar.size(), function.name() + "-bar" + index, region);
    }

    @Override
    public void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
        if (function.region(index) == null) {
            return;
        }
        log.debug("{} BAR {} unmapped from 0x{}", function.name(), index, Long.toHexString(address));
        (bar.isIo() ? pio : mmio).unregister(address);
    }
}
