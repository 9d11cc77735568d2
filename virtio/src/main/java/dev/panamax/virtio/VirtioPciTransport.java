package dev.panamax.virtio;

import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.server.BusDeviceRegion;
import dev.panamax.vfiouser.server.DeviceDma;
import dev.panamax.vfiouser.server.DeviceIrqs;
import dev.panamax.vfiouser.server.DmaException;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.OptionalLong;

import static dev.panamax.virtio.Virtqueue.NO_VECTOR;
import static dev.panamax.virtio.VirtioDevice.DEVICE_NEEDS_RESET;
import static dev.panamax.virtio.VirtioDevice.DRIVER_OK;

/**
 * The virtio transport on PCI, modern (non-transitional) devices only (virtio 1.2, 4.1 "Virtio Over PCI Bus"),
 * for any {@link VirtioDevice}, served over vfio-user. The PCI function is pci-bus's model ({@link PciFunction},
 * {@link MsixCapability}): vendor 0x1af4, device 0x1040 + the virtio device ID (4.1.2.1), revision 1, the
 * device's class, subsystem 0x1af4:0x1100, interrupt pin INTA#. Regions:
 * <pre>
 *   BAR0 (64-bit memory, 16 KiB, trapped)     BAR2 (32-bit memory, 4 KiB, trapped)
 *     0x0000 common configuration (4.1.4.3)     0x000 MSI-X table, queues + 1 entries (PCI 3.0, 6.8.2)
 *     0x1000 ISR status (4.1.4.5)               0x800 MSI-X pending bit array
 *     0x2000 device configuration (4.1.4.6)
 *     0x3000 notifications (4.1.4.4), notify_off_multiplier 4, queue_notify_off = queue index
 * </pre>
 * Each queue's notify address (the first {@link VfioUserDevice#MAX_IOEVENTFDS_PER_REGION} queues) is also offered
 * as an ioeventfd of length 0 (DEVICE_GET_REGION_IO_FDS): a client that registers it with KVM rings the queue without
 * a REGION_WRITE; the signal takes the same notify path.
 * Each structure is found through a vendor-specific capability, struct virtio_pci_cap (4.1.4); a
 * VIRTIO_PCI_CAP_PCI_CFG capability (4.1.4, "PCI configuration access capability") reaches both BARs through
 * configuration space alone.
 *
 * <p>Interrupts (4.1.5.3, 4.1.5.4): MSI-X vector {@code msix_config} for configuration changes, each queue's
 * {@code queue_msix_vector} for used buffers (the driver chooses). The MSI-X table is plain memory here:
 * masking a vector is left to the client, which owns the interrupt routing (as for vfio-pci, where the VMM
 * emulates the table); the device honours only the capability's enable and function-mask bits. Without MSI-X
 * the device sets ISR status and drives INTx# unless the command register disables it.
 *
 * <p>Features offered: the device's, plus VIRTIO_F_VERSION_1 and VIRTIO_F_RING_INDIRECT_DESC (6). Not offered:
 * VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_RING_EVENT_IDX. A broken ring sets DEVICE_NEEDS_RESET (2.1.2).
 *
 * <p>Migration (vfio-user migration v2, VFIO_MIGRATION_STOP_COPY): the device declares a {@code MigratableDevice}
 * ({@link TransportMigration}, which documents the state format): STOP quiesces the queues (see {@link #stopQueues}),
 * the state carries the common configuration, queues, ISR, MSI-X table and the {@link VirtioDevice}'s own part.
 *
 * <p>Use: {@code new VirtioPciTransport(device, dmaByMessages)}, then {@link #serve} on a connected socket; one
 * instance per client (its PCI state is not reset between clients). Thread-safe: every access holds the PCI
 * function's lock.
 */
public final class VirtioPciTransport {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciTransport.class);

    // ---- PCI identity (4.1.2) ----
    public static final int PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
    /** 4.1.2.1: the PCI device ID is this plus the virtio device ID. */
    public static final int PCI_DEVICE_ID_VIRTIO_BASE = 0x1040;
    /** "Non-transitional devices SHOULD have a PCI Revision ID of 1 or higher." */
    public static final int REVISION = 1;
    /** What QEMU uses for modern devices; informational only (4.1.2.1). */
    public static final int SUBSYSTEM_ID = 0x1100;

    // ---- Regions ----
    public static final int VIRTIO_BAR = 0;
    public static final long VIRTIO_BAR_SIZE = 0x4000;
    public static final int MSIX_BAR = 2;
    public static final long MSIX_BAR_SIZE = 0x1000;
    public static final int COMMON_CFG_OFFSET = 0x0000;
    public static final int ISR_OFFSET = 0x1000;
    public static final int DEVICE_CFG_OFFSET = 0x2000;
    public static final int NOTIFY_OFFSET = 0x3000;
    /** 4.1.4.4: queue i's doorbell is at NOTIFY_OFFSET + queue_notify_off * this; queue_notify_off = i. */
    public static final int NOTIFY_OFF_MULTIPLIER = 4;
    /** struct virtio_pci_common_cfg up to queue_device (4.1.4.3), bytes. */
    public static final int COMMON_CFG_SIZE = CommonConfig.SIZE;
    public static final int MSIX_TABLE_OFFSET = 0x000;
    public static final int MSIX_PBA_OFFSET = 0x800;

    // ---- virtio PCI capabilities (4.1.4): cfg_type ----
    public static final int VIRTIO_PCI_CAP_COMMON_CFG = 1;
    public static final int VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
    public static final int VIRTIO_PCI_CAP_ISR_CFG = 3;
    public static final int VIRTIO_PCI_CAP_DEVICE_CFG = 4;
    public static final int VIRTIO_PCI_CAP_PCI_CFG = 5;

    /** ISR status bits (4.1.4.5). */
    public static final int ISR_QUEUE = 1;
    public static final int ISR_CONFIG = 2;

    final VirtioDevice device;
    private final String name;
    private final long deviceFeatures;
    private final int deviceConfigSize;
    private final PciFunction function;
    private final PciConfigSpace config;
    final MsixCapability msix;
    private final BusDeviceRegion msixRegion;
    final Virtqueue[] queues;
    final CommonConfig common;
    private final VfioUserDevice vfioUserDevice;
    private DeviceDma dma;
    private DeviceIrqs irqs;
    int isr;
    /** Migration (STOP until RUNNING): doorbells are remembered in {@link #notifyPending}, not served. */
    boolean stopped;
    /** Per queue: rung while stopped, to be served on resume. */
    final boolean[] notifyPending;

    /**
     * Builds the PCI function for {@code device}.
     *
     * @param dmaByMessages ignore DMA_MAP fds: reach driver memory by DMA_READ/DMA_WRITE messages only
     * @throws IllegalArgumentException if the device has no queue, more than fit the notify area, or a
     *                                  configuration larger than its window
     */
    public VirtioPciTransport(VirtioDevice device, boolean dmaByMessages) {
        this.device = device;
        this.name = device.name();
        int[] sizes = device.queueMaxSizes();
        deviceConfigSize = device.config().length;
        if (sizes.length < 1 || (long) sizes.length * NOTIFY_OFF_MULTIPLIER > VIRTIO_BAR_SIZE - NOTIFY_OFFSET
                || deviceConfigSize > NOTIFY_OFFSET - DEVICE_CFG_OFFSET) {
            throw new IllegalArgumentException(name + ": " + sizes.length + " queues and " + deviceConfigSize
                    + " bytes of device configuration do not fit the virtio BAR");
        }
        queues = new Virtqueue[sizes.length];
        for (int i = 0; i < sizes.length; i++) {
            queues[i] = new Virtqueue(i, sizes[i]);
        }
        notifyPending = new boolean[sizes.length];
        deviceFeatures = device.features() | (1L << VirtioDevice.VIRTIO_F_VERSION_1) | (1L << VirtioDevice.VIRTIO_F_RING_INDIRECT_DESC);
        int vectors = queues.length + 1;
        common = new CommonConfig(name, deviceFeatures, queues, vectors, this::virtioReset);

        function = new PciFunction(name, new PciConfigSpace(PciConfigSpace.SIZE));
        config = function.config();
        config.initHeader(PCI_VENDOR_ID_REDHAT_QUMRANET, PCI_DEVICE_ID_VIRTIO_BASE + device.deviceId(), REVISION,
                device.pciClassCode(), PCI_VENDOR_ID_REDHAT_QUMRANET, SUBSYSTEM_ID);
        function.setInterruptPin(1);
        function.setBar(VIRTIO_BAR, PciBar.memory64(VIRTIO_BAR_SIZE, false), null);
        function.setBar(MSIX_BAR, PciBar.memory32(MSIX_BAR_SIZE), null);
        // The client owns vector masking (see above): the listener needs to hear nothing, and the
        // device fires by the capability's enable and function-mask bits only.
        msix = new MsixCapability(function, vectors, MSIX_BAR, MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET, new MsiListener() {
            @Override
            public void onVectorChanged(int vector, long address, int data, boolean masked) {
            }

            @Override
            public void onMessage(int vector, long address, int data) {
            }
        });
        msixRegion = new BusDeviceRegion(msix);
        addVirtioCapability(VIRTIO_PCI_CAP_COMMON_CFG, COMMON_CFG_OFFSET, COMMON_CFG_SIZE, -1);
        addVirtioCapability(VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFFSET, NOTIFY_OFF_MULTIPLIER * queues.length, NOTIFY_OFF_MULTIPLIER);
        addVirtioCapability(VIRTIO_PCI_CAP_ISR_CFG, ISR_OFFSET, 1, -1);
        addVirtioCapability(VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG_OFFSET, deviceConfigSize, -1);
        new PciCfgCapability(function, this::barRead, this::barWrite, this::barSize);

        VfioUserDevice.Builder builder = VfioUserDevice.builder(function)
                .bar(VIRTIO_BAR, new RegionHandler() {
                    @Override
                    public void read(long offset, byte[] into) {
                        virtioBarRead((int) offset, into);
                    }

                    @Override
                    public void write(long offset, byte[] data) {
                        virtioBarWrite((int) offset, data);
                    }
                })
                .bar(MSIX_BAR, msixRegion)
                .irqs(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 1)
                .irqs(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), vectors)
                .onReset(this::functionReset)
                .onDisconnect(this::functionReset)
                .dmaByMessages(dmaByMessages)
                .migration(new TransportMigration(this));
        // Each queue's doorbell as an ioeventfd of length 0 (any write at the address: KVM's fast MMIO path, as QEMU
        // registers modern virtio-pci notifications); a signal reaches notifyQueue as a REGION_WRITE there would.
        for (int i = 0; i < Math.min(queues.length, VfioUserDevice.MAX_IOEVENTFDS_PER_REGION); i++) {
            builder.ioeventfd(VIRTIO_BAR, NOTIFY_OFFSET + (long) i * NOTIFY_OFF_MULTIPLIER, 0, OptionalLong.empty());
        }
        vfioUserDevice = builder.build();
        functionReset();
    }

    /**
     * struct virtio_pci_cap (4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
     * le32 offset, le32 length; the notify capability adds le32 notify_off_multiplier (4.1.4.4).
     * Read-only to the driver.
     */
    private void addVirtioCapability(int cfgType, int offset, int length, int notifyOffMultiplier) {
        int capLen = notifyOffMultiplier >= 0 ? 20 : 16;
        ByteBuffer body = ByteBuffer.allocate(capLen - 2).order(ByteOrder.LITTLE_ENDIAN);
        body.put(0, (byte) capLen).put(1, (byte) cfgType).put(2, (byte) VIRTIO_BAR).putInt(6, offset).putInt(10, length);
        if (notifyOffMultiplier >= 0) {
            body.putInt(14, notifyOffMultiplier);
        }
        config.addCapability(PciConfigSpace.CAP_ID_VNDR, body.array());
    }

    private long barSize(int bar) {
        return bar == VIRTIO_BAR ? VIRTIO_BAR_SIZE : bar == MSIX_BAR ? MSIX_BAR_SIZE : 0;
    }

    private void barRead(int bar, int offset, byte[] into) {
        if (bar == VIRTIO_BAR) {
            virtioBarRead(offset, into);
        } else {
            msixRegion.read(offset, into);
        }
    }

    private void barWrite(int bar, int offset, byte[] data) {
        if (bar == VIRTIO_BAR) {
            virtioBarWrite(offset, data);
        } else {
            msixRegion.write(offset, data);
        }
    }

    /** @return the vfio-user device declaration (configuration space, BAR0, BAR2, INTx, queues + 1 MSI-X vectors) */
    public VfioUserDevice vfioUserDevice() {
        return vfioUserDevice;
    }

    /** @return the PCI function (pci-bus's model of the configuration space) */
    public PciFunction function() {
        return function;
    }

    /** @return MSI-X vectors: one for configuration changes and one per queue */
    public int msixVectors() {
        return msix.vectors();
    }

    /**
     * Serves the device on a connected socket: makes the server, hands its DMA and interrupts to
     * the transport, starts it. Call once; close the server, then the device.
     *
     * @throws IllegalStateException when already served
     */
    public VfioUserServer serve(UnixSocket socket) {
        return serve(socket, VfioUserServer.Deadlines.DEFAULT);
    }

    /** As {@link #serve(UnixSocket)}, with the server's {@code deadlines} for its client. */
    public VfioUserServer serve(UnixSocket socket, VfioUserServer.Deadlines deadlines) {
        synchronized (function.lock()) {
            if (dma != null) {
                throw new IllegalStateException(name + " is already served; make one device per client");
            }
            VfioUserServer server = new VfioUserServer(socket, vfioUserDevice, deadlines);
            dma = server.dma();
            irqs = server.irqs();
            function.connectIntx(irqs::intx);
            server.start();
            return server;
        }
    }

    /** @return the device status byte (2.1) */
    public int status() {
        synchronized (function.lock()) {
            return common.status;
        }
    }

    /** @return the features offered (bit numbers as in 6 and 5.x.3) */
    public long deviceFeatures() {
        return deviceFeatures;
    }

    // ---- Reset (2.4, 4.1.4.3.1) ----

    /** A function reset (DEVICE_RESET) or the client leaving: virtio reset plus the MSI-X table. */
    private void functionReset() {
        synchronized (function.lock()) {
            virtioReset();
            for (int v = 0; v < msix.vectors(); v++) {
                long entry = MSIX_TABLE_OFFSET + (long) MsixCapability.ENTRY_SIZE * v;
                msix.write(entry + MsixCapability.ENTRY_LOWER_ADDR, 8, 0);
                msix.write(entry + MsixCapability.ENTRY_DATA, 4, 0);
                msix.write(entry + MsixCapability.ENTRY_VECTOR_CTRL, 4, MsixCapability.ENTRY_CTRL_MASKBIT); // PCI 3.0, 6.8.2.9
            }
        }
    }

    /** The driver wrote 0 to device_status (or the function was reset): everything back to initial values. */
    private void virtioReset() {
        common.reset();
        isr = 0;
        for (Virtqueue q : queues) {
            q.reset();
        }
        Arrays.fill(notifyPending, false);
        device.reset();
        updateInterruptStatus();
    }

    // ---- BAR0 ----

    private void virtioBarRead(int offset, byte[] into) {
        synchronized (function.lock()) {
            Arrays.fill(into, (byte) 0);
            if (within(offset, COMMON_CFG_OFFSET, COMMON_CFG_SIZE)) {
                copyOut(common.image(), offset - COMMON_CFG_OFFSET, into);
            } else if (within(offset, ISR_OFFSET, 4)) {
                if (offset == ISR_OFFSET) {
                    // 4.1.4.5: "reading ISR status resets it to 0" (and deasserts the level interrupt).
                    into[0] = (byte) isr;
                    isr = 0;
                    updateInterruptStatus();
                }
            } else if (within(offset, DEVICE_CFG_OFFSET, deviceConfigSize)) {
                copyOut(device.config(), offset - DEVICE_CFG_OFFSET, into);
            }
            // Notifications read as 0; the rest of the BAR is reserved.
        }
    }

    private void virtioBarWrite(int offset, byte[] data) {
        synchronized (function.lock()) {
            if (within(offset, COMMON_CFG_OFFSET, COMMON_CFG_SIZE)) {
                common.write(offset - COMMON_CFG_OFFSET, data);
            } else if (within(offset, NOTIFY_OFFSET, NOTIFY_OFF_MULTIPLIER * queues.length)) {
                // 4.1.5.2: the driver writes the 16-bit queue index to the queue's notify address.
                notifyQueue(queues[(offset - NOTIFY_OFFSET) / NOTIFY_OFF_MULTIPLIER]);
            } else if (within(offset, DEVICE_CFG_OFFSET, deviceConfigSize)) {
                device.writeConfig(offset - DEVICE_CFG_OFFSET, data);
            } else {
                LOG.debug("{}: write of {} bytes at BAR0 0x{} ignored", name, data.length, Integer.toHexString(offset));
            }
        }
    }

    private static boolean within(int offset, int start, int size) {
        return offset >= start && offset - start < size;
    }

    /** Copies {@code image[from..]} into {@code into}, zeros past the image's end. */
    private static void copyOut(byte[] image, int from, byte[] into) {
        System.arraycopy(image, from, into, 0, Math.min(into.length, image.length - from));
    }

    // ---- Interrupts (4.1.4.5, 4.1.5.3, 4.1.5.4) ----

    /**
     * Notifies the driver: with MSI-X on, by {@code vector} (none for NO_VECTOR, or while the
     * function is masked); else by setting {@code isrBit} and signalling INTx. The configuration
     * bit of ISR is set in either case (4.1.4.5.1).
     */
    private void interrupt(int isrBit, int vector) {
        try {
            if (msix.enabled()) {
                if (isrBit == ISR_CONFIG) {
                    isr |= ISR_CONFIG;
                }
                if (vector != NO_VECTOR && !msix.functionMasked() && irqs != null) {
                    irqs.trigger(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), vector);
                }
            } else {
                isr |= isrBit;
                updateInterruptStatus();
            }
        } catch (RuntimeException e) {
            LOG.warn("{}: interrupt not delivered: {}", name, e.getMessage());
        }
    }

    /**
     * 4.1.4.5.1: without MSI-X, the PCI status Interrupt Status bit is the OR of ISR, and so is the INTx# level
     * (unless the command register's Interrupt Disable bit is set; {@link PciFunction#setIntx}): raised by a used
     * buffer or a configuration change, lowered when the driver reads ISR.
     */
    void updateInterruptStatus() {
        function.setIntx(isr != 0 && !msix.enabled());
    }

    /** 2.1.2: the device has gone wrong; the driver must reset it. A configuration change notification tells it. */
    private void needsReset(String why) {
        LOG.warn("{}: DEVICE_NEEDS_RESET: {}", name, why);
        common.status |= DEVICE_NEEDS_RESET;
        interrupt(ISR_CONFIG, common.msixConfig);
    }

    // ---- Notifications (4.1.5.2, 2.7.13 from the device's side) ----

    /**
     * The driver rang {@code queue}'s doorbell: the device serves it, then one interrupt unless suppressed. While
     * stopped for migration the doorbell is only remembered; {@link #resumeQueues} serves it.
     */
    private void notifyQueue(Virtqueue queue) {
        if (stopped) {
            notifyPending[queue.index] = true;
            return;
        }
        int status = common.status;
        if ((status & DRIVER_OK) == 0 || (status & DEVICE_NEEDS_RESET) != 0 || !queue.enabled || dma == null) {
            LOG.debug("{}: notify ignored (status 0x{}, queue enabled {})", name, Integer.toHexString(status), queue.enabled);
            return;
        }
        try {
            if (device.queueNotified(queue, dma) && !queue.interruptSuppressed(dma)) {
                interrupt(ISR_QUEUE, queue.msixVector);
            }
        } catch (VirtqueueException | DmaException e) {
            needsReset(e.getMessage());
        }
    }

    // ---- Migration (TransportMigration) ----

    /**
     * RUNNING -&gt; STOP. Why this quiesces, with no request half done: a request is served only inside
     * {@link #notifyQueue}, which runs with the PCI function's lock held, on the vfio-user server's one request
     * thread (a REGION_WRITE to the notify area, or to the VIRTIO_PCI_CAP_PCI_CFG window in configuration space),
     * and pops, serves and pushes each chain before it returns. The migration state change reaches {@code stop()}
     * on that same thread, after the previous message was wholly handled, and takes the same lock. The one other
     * way in, a doorbell signalled through its ioeventfd (DEVICE_GET_REGION_IO_FDS), reaches the same
     * {@code virtioBarWrite} on the server's {@code vfio-user-ioeventfd} thread and takes the same lock too, so
     * {@code stop()} waits for a chain being served there as well. Once stopped no doorbell is served (no DMA, no used-buffer interrupt) until {@link #resumeQueues}.
     */
    void stopQueues() {
        synchronized (function.lock()) {
            stopped = true;
        }
    }

    /** STOP -&gt; RUNNING: serve again, first the queues whose doorbell rang while stopped (or in the loaded state). */
    void resumeQueues() {
        synchronized (function.lock()) {
            stopped = false;
            for (int i = 0; i < queues.length; i++) {
                if (notifyPending[i]) {
                    notifyPending[i] = false;
                    notifyQueue(queues[i]);
                }
            }
        }
    }

    /** @return the lock every access to the device holds */
    Object lock() {
        return function.lock();
    }
}
