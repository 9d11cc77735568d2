package dev.panamax.vfio;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One assigned device in a machine, whatever carries its I/O ({@link VfioDeviceIo}: kernel VFIO or vfio-user):
 * the device is reset, its {@link VfioPciFunction} (config space virtualization) goes on the PCI bus, its BARs
 * get addresses as firmware would give them, their mappable parts go straight into the guest
 * ({@link VfioBarMapper}) and the rest traps ({@code trapping}, e.g. a {@link dev.panamax.pci.BusBarMapper}),
 * and its interrupts are wired to KVM ({@link VfioInterrupts}). DMA is not here: the device's IOMMU (or vfio-user
 * DMA_MAP) mirrors guest RAM through a memory listener that the machine adds for the container or connection.
 *
 * <p>{@link #stop()} resets the device (so it stops DMA before guest RAM goes away), turns its interrupts off and
 * takes its BARs out of the guest; {@link #close()} then releases it. Between the two, the machine unmaps guest
 * RAM from the device's IOMMU (which needs the device's group still open).
 */
public final class AssignedPciDevice implements AutoCloseable, Snapshottable {
    private static final Logger log = LoggerFactory.getLogger(AssignedPciDevice.class);
    private static final long PAGE_SIZE = 4096;

    private final VfioDeviceIo device;
    private final boolean canReset;
    private final VfioPciFunction function;
    private final VfioInterrupts interrupts;
    private final VfioBarMapper bars;
    private final int slot;
    private boolean stopped;
    private boolean closed;

    private AssignedPciDevice(VfioDeviceIo device, PciBus bus, AddressSpace space, IrqRoutes routes,
                              BarListener trapping, PciBarAllocator allocator) {
        this.device = device;
        VfioDeviceInfo info = device.deviceInfo();
        if (!info.isPci()) {
            throw new IllegalStateException(device.name() + " is not a PCI device (VFIO_DEVICE_FLAGS_PCI is clear)");
        }
        this.canReset = info.canReset();
        if (canReset) {
            try {
                device.reset();
            } catch (RuntimeException e) {
                throw new IllegalStateException(device.name() + ": the device failed its reset (" + e.getMessage()
                        + "); it may be in use or wedged: unbind and rebind it to vfio-pci, or reset it through sysfs", e);
            }
        } else {
            log.warn("{}: the device offers no reset (VFIO_DEVICE_FLAGS_RESET is clear); it starts as the host left it",
                    device.name());
        }
        this.interrupts = new VfioInterrupts(device, routes);
        this.function = new VfioPciFunction(device, interrupts);
        interrupts.attach(function);
        function.addBarListener(trapping);
        this.bars = new VfioBarMapper(function, space, PAGE_SIZE);
        try {
            allocator.assign(function);
            this.slot = bus.attach(function);
            int pin = function.interruptPin();
            if (pin >= 1 && pin <= 4) {
                interrupts.connectIntx(PciBus.gsi(slot, pin));
            }
        } catch (RuntimeException e) {
            bars.close();
            interrupts.close();
            throw e;
        }
    }

    /**
     * Puts {@code device} on {@code bus} as function 0 of the first free device number.
     *
     * @param device    the device; owned by the result from now on (closed with it, or here on failure)
     * @param bus       the machine's PCI bus
     * @param space     the guest-physical address space, for the BARs' memory slots
     * @param routes    the VM's GSI routes and irqfds
     * @param trapping  maps the BARs' trapping regions on the PIO and MMIO buses
     * @param allocator gives the BARs their addresses
     * @throws IllegalStateException or {@link IllegalArgumentException} with one line naming the device
     */
    public static AssignedPciDevice attach(VfioDeviceIo device, PciBus bus, AddressSpace space, IrqRoutes routes,
                                           BarListener trapping, PciBarAllocator allocator) {
        try {
            return new AssignedPciDevice(device, bus, space, routes, trapping, allocator);
        } catch (RuntimeException e) {
            device.close();
            throw e;
        }
    }

    /** @return the PCI function the guest sees */
    public VfioPciFunction function() {
        return function;
    }

    /** @return the interrupt wiring */
    public VfioInterrupts interrupts() {
        return interrupts;
    }

    /** @return the device number on bus 0 */
    public int slot() {
        return slot;
    }

    /**
     * The client's side of the device for a snapshot, in {@link AssignedDeviceState}'s format ({@code ASGN} v1): the
     * emulated config space (BARs, MSI/MSI-X registers), the MSI-X table, the command register and the interrupt mode.
     * The device's own state is not in it (vfio-user or kernel migration data). Call with the vCPUs paused.
     */
    @Override
    public byte[] saveState() {
        return AssignedDeviceState.save(this);
    }

    /**
     * Puts a {@link #saveState} back into this freshly attached device, before any vCPU runs: BARs mapped where the
     * guest had them, MSI/MSI-X routes and irqfds re-made through the usual config write hooks.
     *
     * @throws dev.panamax.core.state.StateException if the state is not this device's (the device then unchanged), or
     *         its interrupts could not be re-enabled
     */
    @Override
    public void restoreState(byte[] state) {
        AssignedDeviceState.restore(this, state);
    }

    /**
     * Quiets the device at VM stop: resets it (it stops DMA and interrupts), turns its interrupts off and takes
     * its BARs out of the guest. The device stays open, so its IOMMU mappings may be removed after this.
     * Errors are logged, not thrown: the rest of the machine must still be released.
     */
    public synchronized void stop() {
        if (stopped) {
            return;
        }
        stopped = true;
        if (canReset) {
            try {
                device.reset();
            } catch (RuntimeException e) {
                log.error("{}: reset at VM stop failed: {}", device.name(), e.getMessage());
            }
        }
        try {
            interrupts.close();
        } catch (RuntimeException e) {
            log.error("{}: turning interrupts off failed: {}", device.name(), e.getMessage());
        }
        try {
            bars.close();
        } catch (RuntimeException e) {
            log.error("{}: unmapping BARs failed: {}", device.name(), e.getMessage());
        }
    }

    /** {@link #stop()} if not done yet, then releases the device. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        stop();
        closed = true;
        device.close();
    }
}
