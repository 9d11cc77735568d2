package dev.panamax.vfiouser.server;

import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What a vfio-user server exposes: PCI regions by vfio index, interrupt counts by vfio IRQ index
 * (linux/vfio.h {@code VFIO_PCI_INTX_IRQ_INDEX} 0, {@code _MSI_} 1, {@code _MSIX_} 2, {@code _ERR_} 3,
 * {@code _REQ_} 4), and callbacks for DEVICE_RESET and for the client going away. Build with
 * {@link #builder} from a pci-bus {@link PciFunction} (the same model as the VMM's PCI bus: {@link PciConfigSpace}
 * with its masks, BARs, MSI and MSI-X capabilities); its configuration space becomes region
 * {@code VFIO_PCI_CONFIG_REGION_INDEX}, served by {@link PciConfigRegion}. Doorbells of trapped regions may be
 * declared as ioeventfds ({@link Builder#ioeventfd}): the server offers them by DEVICE_GET_REGION_IO_FDS.
 */
public final class VfioUserDevice {

    private final PciFunction function;
    private final VfioUserRegion[] regions;
    private final int[] irqCounts;
    private final Runnable onReset;
    private final Runnable onDisconnect;
    private final boolean dmaByMessages;
    private final List<IoEventFd> ioEventFds;

    /** Most ioeventfds one region may declare: each is an fd in one GET_REGION_IO_FDS reply (the server's {@code max_msg_fds}). */
    public static final int MAX_IOEVENTFDS_PER_REGION = 16;

    /**
     * A doorbell of a trapped region offered as an ioeventfd (spec, "VFIO_USER_DEVICE_GET_REGION_IO_FDS", the
     * ioeventfd sub-region: offset, size, datamatch; linux/kvm.h {@code struct kvm_ioeventfd}). When the client's
     * VMM registers it (KVM_IOEVENTFD), a guest write that matches signals the server's eventfd instead of becoming a
     * REGION_WRITE; the server then calls the region's {@link RegionHandler#write} at {@code offset} with the
     * datamatch as {@code size} little-endian bytes, or with no bytes (the value is not known) without one.
     *
     * @param region    vfio region index of a trapped, writable region
     * @param offset    byte offset of the doorbell in the region
     * @param size      0 (a write of any size and value: KVM's fast MMIO), 1, 2, 4 or 8 bytes
     * @param datamatch the value the write must carry (KVM_IOEVENTFD_FLAG_DATAMATCH); empty for any; none with size 0
     */
    public record IoEventFd(int region, long offset, int size, OptionalLong datamatch) {
        /** @return the bytes {@link RegionHandler#write} gets on a signal: the datamatch, little-endian, or none */
        public byte[] written() {
            if (datamatch.isEmpty()) {
                return new byte[0];
            }
            byte[] b = new byte[size];
            for (int i = 0; i < size; i++) {
                b[i] = (byte) (datamatch.getAsLong() >>> (8 * i));
            }
            return b;
        }
    }
    private final MigratableDevice migration;

    private VfioUserDevice(Builder b) {
        this.ioEventFds = List.copyOf(b.ioEventFds);
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

    /** @return the ioeventfds declared for region {@code index}, in declaration order */
    public List<IoEventFd> ioEventFds(long index) {
        return ioEventFds.stream().filter(e -> e.region() == index).toList();
    }

    /** @return every declared ioeventfd */
    public List<IoEventFd> ioEventFds() {
        return ioEventFds;
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
        private final List<IoEventFd> ioEventFds = new ArrayList<>();
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

        /**
         * Declares a doorbell of region {@code region} as an ioeventfd ({@link IoEventFd}); declare the region first.
         *
         * @throws IllegalArgumentException if the region is not declared, not trapped or not writable; the span
         *         {@code [offset, offset + max(size, 1))} is not inside it; size is not 0, 1, 2, 4 or 8; a datamatch comes
         *         with size 0 or does not fit {@code size} bytes; the region has {@value #MAX_IOEVENTFDS_PER_REGION}
         *         already; or another ioeventfd at the same offset would match the same writes (KVM refuses those, EEXIST)
         */
        public Builder ioeventfd(int region, long offset, int size, OptionalLong datamatch) {
            VfioUserRegion r = region >= 0 && region < regions.length ? regions[region] : null;
            String what = "ioeventfd at offset 0x" + Long.toHexString(offset) + " of region " + region;
            if (r == null || r.handler() == null || !r.writable()) {
                throw new IllegalArgumentException(what + ": the region must be declared first, trapped and writable");
            }
            if (size != 0 && size != 1 && size != 2 && size != 4 && size != 8) {
                throw new IllegalArgumentException(what + ": size " + size + " is not 0, 1, 2, 4 or 8");
            }
            if (offset < 0 || offset >= r.size() || Math.max(size, 1) > r.size() - offset) {
                throw new IllegalArgumentException(what + ": " + size + " bytes lie outside the region's " + r.size());
            }
            if (datamatch.isPresent() && (size == 0 || (size < 8 && datamatch.getAsLong() >>> (8 * size) != 0))) {
                throw new IllegalArgumentException(what + ": datamatch 0x" + Long.toHexString(datamatch.getAsLong())
                        + " needs a size it fits, not " + size);
            }
            long count = ioEventFds.stream().filter(e -> e.region() == region).count();
            if (count >= MAX_IOEVENTFDS_PER_REGION) {
                throw new IllegalArgumentException(what + ": region " + region + " has " + MAX_IOEVENTFDS_PER_REGION + " ioeventfds already");
            }
            for (IoEventFd e : ioEventFds) {
                boolean sameWrites = e.region() == region && e.offset() == offset
                        && (e.datamatch().isEmpty() || datamatch.isEmpty() || e.datamatch().equals(datamatch));
                if (sameWrites) {
                    throw new IllegalArgumentException(what + ": " + e + " matches the same writes");
                }
            }
            ioEventFds.add(new IoEventFd(region, offset, size, datamatch));
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
