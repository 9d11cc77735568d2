package dev.panamax.vfiouser.server;

import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;

import java.util.Arrays;
import java.util.Optional;

/**
 * What a vfio-user server exposes: PCI regions by vfio index, interrupt counts by vfio IRQ index
 * (linux/vfio.h {@code VFIO_PCI_INTX_IRQ_INDEX} 0, {@code _MSI_} 1, {@code _MSIX_} 2, {@code _ERR_} 3,
 * {@code _REQ_} 4), and callbacks for DEVICE_RESET and for the client going away. Build with
 * {@link #builder} from a pci-bus {@link PciFunction} (the same model as the VMM's PCI bus: {@link PciConfigSpace}
 * with its masks, BARs, MSI and MSI-X capabilities); its configuration space becomes region
 * {@code VFIO_PCI_CONFIG_REGION_INDEX}, served by {@link PciConfigRegion}.
 */
public final class VfioUserDevice {

    private final PciFunction function;
    private final VfioUserRegion[] regions;
    private final int[] irqCounts;
    private final Runnable onReset;
    private final Runnable onDisconnect;
    private final boolean dmaByMessages;
    private final MigratableDevice migration;

    private VfioUserDevice(Builder b) {
        this.function = b.function;
        this.regions = b.regions.clone();
        this.irqCounts = b.irqCounts.clone();
        this.onReset = b.onReset;
        this.onDisconnect = b.onDisconnect;
        this.dmaByMessages = b.dmaByMessages;
        this.migration = b.migration;
    }

    /** @return a builder for a device that is PCI function {@code function} */
    public static Builder builder(PciFunction function) {
        return new Builder(function);
    }

    /**
     * A PCI function with a 256-byte configuration space whose type 0 header is filled in
     * ({@link PciConfigSpace#initHeader}, subsystem IDs 0): add BARs and capabilities, then {@link #builder}.
     *
     * @param name      for logs
     * @param classCode 24 bits: base class, sub-class, programming interface (e.g. 0x010802 NVMe)
     */
    public static PciFunction pciFunction(String name, int vendorId, int deviceId, int classCode, int revision) {
        PciFunction f = new PciFunction(name, new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(vendorId, deviceId, revision, classCode, 0, 0);
        return f;
    }

    /** @return the PCI function whose configuration space is region CONFIG */
    public PciFunction function() {
        return function;
    }

    /** @return the region at vfio index {@code index}, if the device has one */
    public Optional<VfioUserRegion> region(long index) {
        return index >= 0 && index < regions.length ? Optional.ofNullable(regions[(int) index]) : Optional.empty();
    }

    /** @return interrupts of vfio IRQ index {@code index}; 0 when none or out of range */
    public int irqCount(long index) {
        return index >= 0 && index < vfio_h.VFIO_PCI_NUM_IRQS() ? irqCounts[(int) index] : 0;
    }

    /** @return true when the server ignores DMA_MAP fds and reaches all client memory by DMA_READ / DMA_WRITE */
    public boolean dmaByMessages() {
        return dmaByMessages;
    }

    /** @return the device's migration callbacks; empty: DEVICE_FEATURE for migration answers ENOTTY */
    public Optional<MigratableDevice> migration() {
        return Optional.ofNullable(migration);
    }

    void reset() {
        onReset.run();
    }

    void disconnected() {
        onDisconnect.run();
    }

    @Override
    public String toString() {
        return "VfioUserDevice" + Arrays.toString(regions) + " irqs " + Arrays.toString(irqCounts);
    }

    /** Declares a device; every part but the PCI function is optional. */
    public static final class Builder {
        private final PciFunction function;
        private final VfioUserRegion[] regions = new VfioUserRegion[vfio_h.VFIO_PCI_NUM_REGIONS()];
        private final int[] irqCounts = new int[vfio_h.VFIO_PCI_NUM_IRQS()];
        private Runnable onReset = () -> { };
        private Runnable onDisconnect = () -> { };
        private boolean dmaByMessages;
        private MigratableDevice migration;

        private Builder(PciFunction function) {
            this.function = function;
            PciConfigRegion config = new PciConfigRegion(function);
            regions[vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()] = VfioUserRegion.trapped(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), config.size(), config);
        }

        /**
         * Adds BAR {@code index} as a trapped region of the size the function declares for it
         * ({@link PciFunction#setBar}).
         *
         * @throws IllegalArgumentException if the function has no BAR {@code index} or the index is taken
         */
        public Builder bar(int index, RegionHandler handler) {
            PciBar bar = index >= 0 && index < PciFunction.BAR_COUNT ? function.bar(index) : null;
            if (bar == null) {
                throw new IllegalArgumentException(function.name() + " has no BAR " + index);
            }
            return region(VfioUserRegion.trapped(index, bar.size(), handler));
        }

        /** Adds a region; its index must be free (CONFIG is taken by the configuration space). */
        public Builder region(VfioUserRegion region) {
            if (regions[region.index()] != null) {
                throw new IllegalArgumentException("region index " + region.index() + " is declared twice");
            }
            regions[region.index()] = region;
            return this;
        }

        /** Declares {@code count} interrupts of vfio IRQ index {@code index} (INTx: at most 1). */
        public Builder irqs(int index, int count) {
            if (index < 0 || index >= vfio_h.VFIO_PCI_NUM_IRQS()) {
                throw new IllegalArgumentException("IRQ index " + index + " is not 0.." + (vfio_h.VFIO_PCI_NUM_IRQS() - 1));
            }
            if (count < 0 || (index == vfio_h.VFIO_PCI_INTX_IRQ_INDEX() && count > 1) || (index == vfio_h.VFIO_PCI_MSI_IRQ_INDEX() && count > 32) || count > 2048) {
                throw new IllegalArgumentException("IRQ index " + index + " cannot have " + count + " interrupts");
            }
            irqCounts[index] = count;
            return this;
        }

        /** Called on the request thread for DEVICE_RESET. */
        public Builder onReset(Runnable onReset) {
            this.onReset = onReset;
            return this;
        }

        /** Called once the client has gone and every fd and DMA mapping of it is closed. */
        public Builder onDisconnect(Runnable onDisconnect) {
            this.onDisconnect = onDisconnect;
            return this;
        }

        /**
         * With {@code true}, the fds that come with DMA_MAP are not mmapped (they are closed): every
         * device DMA goes by DMA_READ / DMA_WRITE messages, as for a range given without fd (spec,
         * "VFIO_USER_DMA_MAP": the server may not be able to map). For tests and slow-path checks.
         */
        public Builder dmaByMessages(boolean on) {
            this.dmaByMessages = on;
            return this;
        }

        /**
         * Declares migration support (VFIO_MIGRATION_STOP_COPY): the server offers the VERSION {@code migration}
         * capability and answers DEVICE_FEATURE, MIG_DATA_READ and MIG_DATA_WRITE.
         */
        public Builder migration(MigratableDevice m) {
            this.migration = m;
            return this;
        }

        public VfioUserDevice build() {
            return new VfioUserDevice(this);
        }
    }
}
