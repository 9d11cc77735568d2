package dev.panamax.launcher;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.KernelVfioDevice;
import dev.panamax.vfio.VfioContainer;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.VfioDmaListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;

/**
 * The machine's assigned devices ({@code --device}) and what they share: for kernel VFIO, one container
 * ({@code /dev/vfio/vfio}) holding every device's group, whose IOMMU mirrors guest RAM through a
 * {@link VfioDmaListener} on the address space (IOVA = guest-physical address), mapped before the guest runs.
 *
 * <p>{@link #close()} undoes it all in reverse: devices reset (no more DMA), guest RAM unmapped from the IOMMU
 * (while the groups still hold it), devices released, container closed. It must run after the vCPUs stopped and
 * before guest RAM is freed.
 */
final class Passthrough implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Passthrough.class);

    private final AddressSpace space;
    private final PciBus bus;
    private final IrqRoutes routes;
    private final BarListener trapping;
    private final PciBarAllocator allocator;
    private final List<AssignedPciDevice> devices = new ArrayList<>();
    private VfioContainer container;
    private VfioDmaListener containerDma;

    Passthrough(AddressSpace space, PciBus bus, IrqRoutes routes, BarListener trapping, PciBarAllocator allocator) {
        this.space = space;
        this.bus = bus;
        this.routes = routes;
        this.trapping = trapping;
        this.allocator = allocator;
    }

    /**
     * Opens and attaches one device.
     *
     * @throws PanamaxException naming the {@code --device} option and what to do
     */
    void add(DeviceSpec spec) {
        try {
            VfioDeviceIo io = switch (spec) {
                case DeviceSpec.VfioPci p -> openKernelDevice(p.host());
                case DeviceSpec.VfioUserPci u -> throw new PanamaxException("vfio-user-pci is not available yet");
            };
            AssignedPciDevice d = AssignedPciDevice.attach(io, bus, space, routes, trapping, allocator);
            devices.add(d);
            log.info("{}: assigned as PCI 00:{}.0 ({}), interrupts {}", spec.text(), String.format("%02x", d.slot()),
                    d.function().name(), d.interrupts().mode());
        } catch (IllegalStateException | IllegalArgumentException | LinuxException e) {
            throw new PanamaxException("--device " + spec.text() + ": " + e.getMessage(), e);
        }
    }

    private VfioDeviceIo openKernelDevice(String bdf) {
        if (container == null) {
            container = VfioContainer.open();
        }
        KernelVfioDevice device = KernelVfioDevice.open(bdf, container);
        if (containerDma == null) {
            // The IOMMU is set when the first group joins the container; map guest RAM into it now.
            containerDma = new VfioDmaListener(container);
            try {
                space.addListener(containerDma);
            } catch (RuntimeException e) {
                containerDma = null;
                device.close();
                throw e;
            }
        }
        return device;
    }

    /** Stops every device (reset: no more DMA), unmaps guest RAM from the IOMMU, then releases devices and container. */
    @Override
    public void close() {
        for (AssignedPciDevice d : devices.reversed()) {
            d.stop();
        }
        if (containerDma != null) {
            try {
                space.removeListener(containerDma);
            } catch (RuntimeException e) {
                log.error("unmapping guest RAM from the IOMMU failed: {}", e.getMessage());
            }
            containerDma = null;
        }
        for (AssignedPciDevice d : devices.reversed()) {
            try {
                d.close();
            } catch (RuntimeException e) {
                log.error("releasing {} failed: {}", d.function().name(), e.getMessage());
            }
        }
        devices.clear();
        if (container != null) {
            container.close();
            container = null;
        }
    }
}
