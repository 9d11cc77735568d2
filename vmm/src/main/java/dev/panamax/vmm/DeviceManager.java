package dev.panamax.vmm;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.IoEventFds;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.KernelVfioDevice;
import dev.panamax.vfio.VfioContainer;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.DmaMemoryListener;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.client.VfioUserClientException;
import dev.panamax.vfiouser.client.VfioUserIoEventFds;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * The machine's device manager: it attaches the assigned PCI devices ({@link MachineConfig#devices()}) and makes
 * guest RAM reachable for their DMA, before the guest runs: for kernel VFIO, one container ({@code /dev/vfio/vfio}) holding every device's group, whose IOMMU
 * mirrors guest RAM through a {@link DmaMemoryListener} (IOVA = guest-physical address); for vfio-user, one
 * connection per device ({@link VfioUserClient}), to whose DMA backend a {@link DmaMemoryListener} sends guest RAM
 * as DMA_MAP with the memfd. Both kinds become the same {@link AssignedPciDevice}.
 *
 * <p>{@link #close()} undoes it all in reverse: devices reset (no more DMA), guest RAM unmapped (from the IOMMU
 * while the groups still hold it; DMA_UNMAP while the connections are up), devices released, container closed. It must run after the vCPUs stopped and
 * before guest RAM is freed.
 */
final class DeviceManager implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(DeviceManager.class);

    private final AddressSpace space;
    private final PciBus bus;
    /** The VM's GSI routing, asked for only when a device is assigned (it replaces KVM's default table). */
    private final Supplier<IrqRoutes> routes;
    /** The VM's ioeventfds, for vfio-user doorbells ({@link DeviceConfig.VfioUserPci#ioeventfd()}). */
    private final Supplier<IoEventFds> ioEventFds;
    private final List<VfioUserIoEventFds> doorbells = new ArrayList<>();
    private final BarListener trapping;
    private final PciBarAllocator allocator;
    private final List<AssignedPciDevice> devices = new ArrayList<>();
    /** What each attached device is, in the order of {@link #devices}: for a snapshot's manifest. */
    private final List<SnapshotManifest.Device> described = new ArrayList<>();
    private final Consumer<String> onBroken;
    /** The vfio-user connections' DMA listeners, by connection. */
    private final Map<VfioDeviceIo, MemoryListener> dmaListeners = new HashMap<>();
    private VfioContainer container;
    private DmaMemoryListener containerDma;

    /**
     * @param onBroken told (once per device) when a vfio-user device configured with
     *                 {@link DeviceConfig.VfioUserPci#stopOnError()} broke: the machine stops the VM with that message
     */
    DeviceManager(AddressSpace space, PciBus bus, Supplier<IrqRoutes> routes, BarListener trapping, PciBarAllocator allocator,
                Consumer<String> onBroken) {
        this(space, bus, routes, () -> null, trapping, allocator, onBroken);
    }

    /** @param ioEventFds the VM's ioeventfds (null from the supplier: vfio-user doorbells always go by REGION_WRITE) */
    DeviceManager(AddressSpace space, PciBus bus, Supplier<IrqRoutes> routes, Supplier<IoEventFds> ioEventFds, BarListener trapping,
                  PciBarAllocator allocator, Consumer<String> onBroken) {
        this.ioEventFds = ioEventFds;
        this.onBroken = onBroken;
        this.space = space;
        this.bus = bus;
        this.routes = routes;
        this.trapping = trapping;
        this.allocator = allocator;
    }

    /**
     * Opens and attaches one device.
     *
     * @throws ConfigException naming the device ("device NAME: ...") and what is wrong
     */
    void add(DeviceConfig spec) {
        try {
            VfioDeviceIo io = switch (spec) {
                case DeviceConfig.VfioPci p -> openKernelDevice(p.host());
                case DeviceConfig.VfioUserPci u -> connectVfioUser(u);
            };
            AssignedPciDevice d;
            try {
                d = AssignedPciDevice.attach(io, bus, space, routes.get(), trapping, allocator);
            } catch (RuntimeException e) {
                forgetDma(io); // attach closed the device; its guest RAM mapping goes with it
                throw e;
            }
            devices.add(d);
            described.add(new SnapshotManifest.Device(spec.name(), switch (spec) {
                case DeviceConfig.VfioPci p -> "vfio-pci";
                case DeviceConfig.VfioUserPci u -> "vfio-user-pci";
            }, String.format("00:%02x.0", d.slot())));
            if (spec instanceof DeviceConfig.VfioUserPci u && u.ioeventfd() && io instanceof VfioUserClient client
                    && ioEventFds.get() != null) {
                VfioUserIoEventFds bells = VfioUserIoEventFds.attach(client, d.function(), ioEventFds.get());
                doorbells.add(bells);
                log.debug("{}: {} ioeventfds offered", spec.name(), bells.offeredCount());
            }
            log.info("{}: assigned as PCI 00:{}.0 ({}), interrupts {}", spec.name(), String.format("%02x", d.slot()),
                    d.function().name(), d.interrupts().mode());
        } catch (IllegalStateException | IllegalArgumentException | LinuxException | VfioUserClientException e) {
            throw new ConfigException("device", ConfigException.SETTING + " " + spec.name() + ": " + e.getMessage(), e);
        }
    }

    /**
     * Connects to a vfio-user server and streams guest RAM to it (DMA_MAP with the memfd over SCM_RIGHTS). The DMA
     * listener is removed (DMA_UNMAP) when the device is stopped, before the connection closes.
     */
    private VfioDeviceIo connectVfioUser(DeviceConfig.VfioUserPci spec) {
        // With ioeventfds, a doorbell bypasses the socket: BAR writes must not be posted, or one could be overtaken.
        VfioUserClient.Options options = VfioUserClient.Options.defaults().withRequestTimeout(spec.requestTimeout())
                .withPostedWrites(!spec.ioeventfd());
        if (spec.stopOnError()) {
            options = options.withOnBroken((client, reason) -> onBroken.accept(client.name() + ": " + reason));
        }
        VfioUserClient client = VfioUserClient.connect(spec.socket(), options);
        DmaMemoryListener dma = new DmaMemoryListener(client.dma());
        try {
            space.addListener(dma);
        } catch (RuntimeException e) {
            client.close();
            throw e;
        }
        dmaListeners.put(client, dma);
        return client;
    }

    private void forgetDma(VfioDeviceIo io) {
        MemoryListener dma = dmaListeners.remove(io);
        if (dma != null) {
            try {
                space.removeListener(dma);
            } catch (RuntimeException e) {
                log.debug("DMA_UNMAP after a failed attach: {}", e.getMessage());
            }
        }
    }

    private VfioDeviceIo openKernelDevice(String bdf) {
        if (container == null) {
            container = VfioContainer.open();
        }
        KernelVfioDevice device = KernelVfioDevice.open(bdf, container);
        if (containerDma == null) {
            // The IOMMU is set when the first group joins the container; map guest RAM into it now.
            containerDma = new DmaMemoryListener(container);
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

    /** @return the attached devices as a snapshot's manifest lists them: name, kind, guest PCI address */
    List<SnapshotManifest.Device> described() {
        return List.copyOf(described);
    }

    /** @return the attached devices, in the order of {@link #described()} */
    List<AssignedPciDevice> assigned() {
        return List.copyOf(devices);
    }

    /** Stops every device (reset: no more DMA), unmaps guest RAM from the IOMMU, then releases devices and container. */
    @Override
    public void close() {
        for (VfioUserIoEventFds bells : doorbells.reversed()) {
            try {
                bells.close();
            } catch (RuntimeException e) {
                log.error("deassigning vfio-user ioeventfds failed: {}", e.getMessage());
            }
        }
        doorbells.clear();
        for (AssignedPciDevice d : devices.reversed()) {
            d.stop();
        }
        for (MemoryListener dma : dmaListeners.values()) {
            try {
                space.removeListener(dma);
            } catch (RuntimeException e) {
                log.error("DMA_UNMAP of guest RAM failed: {}", e.getMessage());
            }
        }
        dmaListeners.clear();
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
        described.clear();
        if (container != null) {
            container.close();
            container = null;
        }
    }
}
