package dev.panamax.pci;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link BarListener} that registers a BAR's region ({@link PciFunction#region}) on the machine's PIO bus
 * (I/O BARs) or MMIO bus (memory BARs) while the BAR decodes, and unregisters it when it stops. BARs without a
 * region are left to other listeners.
 *
 * <p>A BAR the guest places over another range already on the bus is not registered (a warning is logged) and
 * does not answer until moved: the guest must not be able to take over another device's range or crash the VMM.
 */
public final class BusBarMapper implements BarListener {
    private static final Logger log = LoggerFactory.getLogger(BusBarMapper.class);
    private final Bus pio;
    private final Bus mmio;
    /** What this mapper registered, so that it only ever unregisters its own ranges. */
    private final Map<Key, Long> registered = new HashMap<>();

    private record Key(PciFunction function, int index) {
    }

    /**
     * @param pio  the port I/O bus
     * @param mmio the MMIO bus (guest-physical addresses)
     */
    public BusBarMapper(Bus pio, Bus mmio) {
        this.pio = pio;
        this.mmio = mmio;
    }

    @Override
    public synchronized void barMapped(PciFunction function, int index, PciBar bar, long address) {
        BusDevice region = function.region(index);
        if (region == null) {
            return;
        }
        Bus bus = bar.isIo() ? pio : mmio;
        try {
            bus.register(address, bar.size(), function.name() + "-bar" + index, region);
        } catch (IllegalArgumentException overlap) {
            log.warn("{} BAR {} not mapped: {}", function.name(), index, overlap.getMessage());
            return;
        }
        registered.put(new Key(function, index), address);
        log.debug("{} BAR {} ({}, 0x{} bytes) mapped at 0x{}", function.name(), index, bar.kind(),
                Long.toHexString(bar.size()), Long.toHexString(address));
    }

    @Override
    public synchronized void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
        Long at = registered.remove(new Key(function, index));
        if (at == null) {
            return;
        }
        (bar.isIo() ? pio : mmio).unregister(at);
        log.debug("{} BAR {} unmapped from 0x{}", function.name(), index, Long.toHexString(at));
    }
}
