package dev.panamax.vfio;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.pci.MsiCapability;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciExpress;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.bindings.vfio_h;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.List;

import static dev.panamax.pci.PciConfigSpace.BASE_ADDRESS_0;
import static dev.panamax.pci.PciConfigSpace.CAPABILITY_LIST;
import static dev.panamax.pci.PciConfigSpace.COMMAND;
import static dev.panamax.pci.PciConfigSpace.COMMAND_IO;
import static dev.panamax.pci.PciConfigSpace.COMMAND_MEMORY;
import static dev.panamax.pci.PciConfigSpace.HEADER_END;
import static dev.panamax.pci.PciConfigSpace.INTERRUPT_LINE;
import static dev.panamax.pci.PciConfigSpace.ROM_ADDRESS;
import static dev.panamax.pci.PciConfigSpace.STATUS;
import static dev.panamax.pci.PciConfigSpace.STATUS_CAP_LIST;

/**
 * An assigned (passthrough) PCI function: configuration space comes from the device through
 * {@link VfioDeviceIo}, except the parts the VMM must own, which are emulated in this function's own
 * {@link PciConfigSpace} (the "virtual" space) with pci-bus's machinery:
 *
 * <ul>
 *   <li>BARs 0..5 and the expansion ROM BAR: emulated, sized from the region sizes VFIO reports; writes never
 *       reach the device (the guest's addresses mean nothing to the host). BAR decode is reported to
 *       {@link dev.panamax.pci.BarListener}s as for any {@link PciFunction}.</li>
 *   <li>Interrupt line register: emulated (the guest's record of the pin's routing, set by the bus).</li>
 *   <li>Command register: the I/O and memory enable bits read from the virtual space (they drive BAR decode);
 *       the whole register is also written to the device, so it decodes its BARs and can master DMA.</li>
 *   <li>MSI and MSI-X capabilities: emulated by {@link MsiCapability}/{@link MsixCapability} with the
 *       device's vector counts and table/PBA placement, shown at the device's offsets; the guest's programming
 *       goes to the {@link MsiListener}, never to the device (device interrupts are enabled with SET_IRQS). The
 *       message control register is also written to the device, as the command register is: kernel vfio-pci
 *       virtualizes it, and a vfio-user server learns from it that MSI or MSI-X is on (QEMU's client writes
 *       all of config space to the device and lets it filter).</li>
 *   <li>The PCI Express capability: an Endpoint is shown as a Root Complex Integrated Endpoint without Link
 *       registers, since bus 0 has no Root Ports ({@link #emulateExpress}).</li>
 *   <li>Extended config space (0x100..0xFFF, when the VFIO config region has 4096 bytes): the extended capabilities
 *       the guest may drive are passed through, the others hidden with the chain kept valid; the rules and their
 *       reasons are in {@link ExtendedCapabilities}.</li>
 *   <li>Everything else, including the capability list itself, reads from and writes to the device.</li>
 * </ul>
 *
 * <p>Each config byte has a virtual offset (or none), a mask of bits read from the virtual space, and whether
 * writes go to the device. The MSI capability's body sits at another offset in the virtual space (pci-bus places
 * capabilities from 0x40 on), so its bytes are translated; a device with 32-bit MSI has its data and mask
 * registers 4 bytes lower than the 64-bit layout pci-bus emulates, which the translation absorbs.
 * See the 2012 vfio-pci review (config space virtualization) and PCI Local Bus Spec 3.0, 6.2.5 and 6.8.
 */
public final class VfioPciFunction extends PciFunction {
    private static final Logger log = LoggerFactory.getLogger(VfioPciFunction.class);
    static final int CONFIG = vfio_h.VFIO_PCI_CONFIG_REGION_INDEX();
    private static final int ROM_ENABLE = 0x1;
    private static final int ROM_ADDRESS_MASK = 0xFFFF_F800;

    private final VfioDeviceIo device;
    private final int configSize;
    /** Per config byte: the offset in the virtual space, or -1 when the byte is the device's alone. */
    private final int[] virtualOffset;
    /** Per config byte: the bits read from the virtual space; the others come from the device. */
    private final byte[] virtualBits;
    /** Per config byte: whether guest writes reach the device. */
    private final boolean[] toDevice;
    /** Per config byte without a virtual offset: the value its virtual bits read as (see {@link #fixed}). */
    private final byte[] fixedValue;
    private List<ExtendedCapabilities.Capability> extendedCapabilities = List.of();
    private MsiCapability msi;
    private MsixCapability msix;
    private volatile boolean accessFailureLogged;
    private int msixBar = -1;
    private long msixTableOffset;
    private long msixPbaOffset;
    private int msixVectors;

    /**
     * Reads the device's header and capability list and sets up emulation.
     *
     * @param device      the assigned device, a vfio-pci device ({@code VFIO_DEVICE_FLAGS_PCI})
     * @param msiListener hears the guest's MSI and MSI-X programming
     * @throws IllegalArgumentException naming the device if its config space or BARs cannot be emulated
     */
    public VfioPciFunction(VfioDeviceIo device, MsiListener msiListener) {
        super(device.name(), new PciConfigSpace(configSizeOf(device)));
        this.device = device;
        this.configSize = (int) Math.min(device.regionInfo(CONFIG).size(), PciConfigSpace.EXTENDED_SIZE);
        int n = config().size();
        virtualOffset = new int[n];
        virtualBits = new byte[n];
        toDevice = new boolean[n];
        fixedValue = new byte[n];
        java.util.Arrays.fill(virtualOffset, -1);
        java.util.Arrays.fill(toDevice, true);
        synchronized (lock()) {
            config().setWritable(COMMAND, 2, COMMAND_IO | COMMAND_MEMORY);
            emulate(COMMAND, COMMAND, 1, COMMAND_IO | COMMAND_MEMORY, true);
            // The interrupt line register is the firmware's note of where the pin is routed (PciBus sets it):
            // the guest's, not the device's.
            config().setWritable(INTERRUPT_LINE, 1, 0xFF);
            emulate(INTERRUPT_LINE, INTERRUPT_LINE, 1, 0xFF, false);
            declareBars();
            declareRom();
            emulateCapabilities(msiListener);
            if (n == PciConfigSpace.EXTENDED_SIZE) {
                extendedCapabilities = ExtendedCapabilities.apply(device.name(), Math.min(configSize, n),
                        at -> deviceConfig(at, 4), this::fixed);
            }
        }
    }

    private static int configSizeOf(VfioDeviceIo device) {
        long size = device.regionInfo(CONFIG).size();
        if (size < PciConfigSpace.SIZE) {
            throw new IllegalArgumentException(device.name() + ": config region is " + size + " bytes, less than 256");
        }
        return size >= PciConfigSpace.EXTENDED_SIZE ? PciConfigSpace.EXTENDED_SIZE : PciConfigSpace.SIZE;
    }

    /** Emulates {@code length} bytes at {@code offset}: virtual bytes at {@code virtual}, {@code bits} of each read from there. */
    private void emulate(int offset, int virtual, int length, int bits, boolean writeDevice) {
        for (int i = 0; i < length; i++) {
            virtualOffset[offset + i] = virtual + i;
            virtualBits[offset + i] = (byte) bits;
            toDevice[offset + i] = writeDevice;
        }
    }

    /** Shows {@code length} bytes at {@code offset} as {@code value} (little-endian, 0 past 4 bytes); guest writes to them are dropped. */
    private void fixed(int offset, int length, int value) {
        for (int i = 0; i < length; i++) {
            virtualOffset[offset + i] = -1;
            virtualBits[offset + i] = (byte) 0xFF;
            fixedValue[offset + i] = i < 4 ? (byte) (value >>> (8 * i)) : 0;
            toDevice[offset + i] = false;
        }
    }

    private int deviceConfig(int offset, int size) {
        return (int) device.regionRead(CONFIG, offset, size);
    }

    /** BAR n: kind from the device's BAR flags (as vfio-pci reports them), size from region n. */
    private void declareBars() {
        for (int i = 0; i < BAR_COUNT; i++) {
            int flags = deviceConfig(BASE_ADDRESS_0 + 4 * i, 4);
            boolean io = (flags & PciBar.SPACE_IO) != 0;
            boolean is64 = !io && (flags & 0x6) == PciBar.MEM_TYPE_64;
            emulate(BASE_ADDRESS_0 + 4 * i, BASE_ADDRESS_0 + 4 * i, 4, 0xFF, false);
            long size = device.regionInfo(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + i).size();
            if (size == 0) {
                continue;
            }
            PciBar.Kind kind = io ? PciBar.Kind.IO : is64 ? PciBar.Kind.MEMORY64 : PciBar.Kind.MEMORY32;
            PciBar bar;
            try {
                bar = new PciBar(kind, size, !io && (flags & PciBar.MEM_PREFETCH) != 0);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(device.name() + ": BAR " + i + ": " + e.getMessage(), e);
            }
            setBar(i, bar, new BarRegion(i, size));
            if (is64) {
                i++;
                emulate(BASE_ADDRESS_0 + 4 * i, BASE_ADDRESS_0 + 4 * i, 4, 0xFF, false);
            }
        }
    }

    /** The expansion ROM BAR: address bits above the ROM size and the enable bit writable, never sent to the device. */
    private void declareRom() {
        long size = device.regionInfo(vfio_h.VFIO_PCI_ROM_REGION_INDEX()).size();
        emulate(ROM_ADDRESS, ROM_ADDRESS, 4, 0xFF, false);
        if (size > 0) {
            if (Long.bitCount(size) != 1 || size < 0x800 || size > 1L << 31) {
                throw new IllegalArgumentException(device.name() + ": ROM size 0x" + Long.toHexString(size)
                        + " is not a power of two of 2 KiB..2 GiB");
            }
            config().setWritable(ROM_ADDRESS, 4, (int) ~(size - 1) & ROM_ADDRESS_MASK | ROM_ENABLE);
        }
    }

    /** Walks the device's capability list and puts emulation over MSI and MSI-X. */
    private void emulateCapabilities(MsiListener listener) {
        if ((deviceConfig(STATUS, 2) & STATUS_CAP_LIST) == 0) {
            return;
        }
        int at = deviceConfig(CAPABILITY_LIST, 1) & ~3;
        for (int seen = 0; at != 0; seen++) {
            if (at < HEADER_END || at > PciConfigSpace.SIZE - 4 || seen >= 48) {
                throw new IllegalArgumentException(String.format("%s: capability list is broken at 0x%02x", device.name(), at));
            }
            int id = deviceConfig(at, 1);
            if (id == PciConfigSpace.CAP_ID_MSI && msi == null) {
                emulateMsi(at, listener);
            } else if (id == PciConfigSpace.CAP_ID_MSIX && msix == null) {
                emulateMsix(at, listener);
            } else if (id == PciConfigSpace.CAP_ID_EXP) {
                emulateExpress(at);
            }
            at = deviceConfig(at + 1, 1) & ~3;
        }
    }

    /**
     * The PCI Express capability of a device on bus 0, which here is a root complex's internal bus with no Root
     * Ports: as QEMU's {@code vfio_setup_pcie_cap()} does for a device on a root bus, an Endpoint is shown as a Root
     * Complex Integrated Endpoint (the only type 0 function PCIe Base Spec 6.0, 7.5.3.2 puts on a root complex's
     * bus; an Endpoint there is an invalid topology that Windows refuses and that has a Link to nothing), and its
     * Link registers, which an RCiEP does not have, read 0 and drop writes (the guest must not retrain or set ASPM
     * on the host's link). A capability of version 0 (Intel 82599 VF erratum) is shown as version 1, as QEMU does.
     * Other types are shown as the device gives them.
     */
    private void emulateExpress(int at) {
        int flags = deviceConfig(at + PciExpress.FLAGS, 2);
        int version = flags & PciExpress.FLAGS_VERSION;
        int type = (flags & PciExpress.FLAGS_TYPE) >>> 4;
        boolean endpoint = type == PciExpress.TYPE_ENDPOINT;
        if (!endpoint && version != 0) {
            return;
        }
        int shownVersion = version == 0 ? 1 : version;
        fixed(at + PciExpress.FLAGS, 1, (endpoint ? PciExpress.TYPE_RC_INTEGRATED_ENDPOINT : type) << 4 | shownVersion);
        if (endpoint && at + PciExpress.LNKSTA + 2 <= PciConfigSpace.SIZE) {
            fixed(at + PciExpress.LNKCAP, 4, 0);
            fixed(at + PciExpress.LNKCTL, 2, 0);
            fixed(at + PciExpress.LNKSTA, 2, 0);
            if (shownVersion >= 2 && at + PciExpress.LNKSTA2 + 2 <= PciConfigSpace.SIZE) {
                fixed(at + PciExpress.LNKCAP2, 4, 0);
                fixed(at + PciExpress.LNKCTL2, 2, 0);
                fixed(at + PciExpress.LNKSTA2, 2, 0);
            }
        }
        log.debug("{}: PCI Express capability at 0x{}: type {} shown as {}, version {}", device.name(),
                Integer.toHexString(at), type, endpoint ? PciExpress.TYPE_RC_INTEGRATED_ENDPOINT : type, shownVersion);
    }

    /** @return the device's extended capabilities as walked, each kept or hidden ({@link ExtendedCapabilities}) */
    List<ExtendedCapabilities.Capability> extendedCapabilities() {
        return extendedCapabilities;
    }

    private void emulateMsi(int at, MsiListener listener) {
        int flags = deviceConfig(at + MsiCapability.FLAGS, 2);
        int vectors = 1 << Math.min((flags & MsiCapability.FLAGS_QMASK) >>> 1, 5);
        boolean maskable = (flags & MsiCapability.FLAGS_MASKBIT) != 0;
        boolean is64 = (flags & MsiCapability.FLAGS_64BIT) != 0;
        int length = (is64 ? 0x0E : 0x0A) + (maskable ? 0x0A : 0);
        fitsInConfigHeader("MSI", at, length);
        msi = new MsiCapability(this, vectors, maskable, listener);
        int v = msi.offset();
        // +2..+7 (flags, address) line up; after that a 32-bit layout is 4 bytes lower than the 64-bit one.
        for (int k = 2; k < length; k++) {
            int virtual = v + (is64 || k < 8 ? k : k + 4);
            boolean control = k == MsiCapability.FLAGS || k == MsiCapability.FLAGS + 1;
            emulate(at + k, virtual, 1, k == MsiCapability.FLAGS ? ~MsiCapability.FLAGS_64BIT : 0xFF, control);
        }
    }

    /**
     * A capability of {@code length} bytes at {@code at} must end within the 256-byte config header (PCI Local Bus
     * 3.0, 6.7: capabilities live in 0x40..0xFF); past it, its registers would be outside the emulation's arrays or
     * over the extended capabilities. QEMU's {@code pci_add_capability()} refuses such a layout too.
     *
     * @throws IllegalArgumentException naming the device, the capability and its end
     */
    private void fitsInConfigHeader(String name, int at, int length) {
        if (at + length > PciConfigSpace.SIZE) {
            throw new IllegalArgumentException(String.format("%s: the %s capability at 0x%02x has %d bytes, which run to 0x%x, "
                    + "past the config header's end at 0x100", device.name(), name, at, length, at + length - 1));
        }
    }

    private void emulateMsix(int at, MsiListener listener) {
        fitsInConfigHeader("MSI-X", at, MsixCapability.PBA + 4);
        int flags = deviceConfig(at + MsixCapability.FLAGS, 2);
        int table = deviceConfig(at + MsixCapability.TABLE, 4);
        int pba = deviceConfig(at + MsixCapability.PBA, 4);
        msixVectors = (flags & MsixCapability.FLAGS_QSIZE) + 1;
        msixBar = table & 7;
        msixTableOffset = Integer.toUnsignedLong(table & ~7);
        msixPbaOffset = Integer.toUnsignedLong(pba & ~7);
        if (msixBar >= BAR_COUNT || (pba & 7) >= BAR_COUNT) {
            // PCI Local Bus 3.0, 6.8.2.4: BAR indicator values 6 and 7 are reserved.
            throw new IllegalArgumentException(String.format("%s: the MSI-X capability at 0x%02x gives the reserved BAR indicator %d "
                    + "for its %s (0..5 are BARs)", device.name(), at, msixBar >= BAR_COUNT ? msixBar : pba & 7,
                    msixBar >= BAR_COUNT ? "table" : "PBA"));
        }
        if ((pba & 7) != msixBar) {
            throw new IllegalArgumentException(String.format("%s: MSI-X table in BAR %d and PBA in BAR %d: a PBA in "
                    + "another BAR is not supported yet", device.name(), msixBar, pba & 7));
        }
        if (bar(msixBar) == null) {
            throw new IllegalArgumentException(device.name() + ": MSI-X table is in BAR " + msixBar + ", which the device does not have");
        }
        long barSize = bar(msixBar).size();
        // Table: 16 bytes a vector; PBA: one bit a vector in qwords (PCI Local Bus 3.0, 6.8.2.6, 6.8.2.7). No overflow:
        // offsets are below 2^32, sizes below 2^15.
        msixFits("table", msixTableOffset, 16L * msixVectors, barSize);
        msixFits("PBA", msixPbaOffset, 8L * ((msixVectors + 63) / 64), barSize);
        msix = new MsixCapability(this, msixVectors, msixBar, msixTableOffset, msixPbaOffset, listener);
        emulate(at + MsixCapability.FLAGS, msix.offset() + MsixCapability.FLAGS, 2, 0xFF, true);
        emulate(at + MsixCapability.TABLE, msix.offset() + MsixCapability.TABLE, 8, 0xFF, false);
    }

    private void msixFits(String what, long offset, long length, long barSize) {
        if (offset + length > barSize) {
            throw new IllegalArgumentException(String.format("%s: the MSI-X %s of %d vectors (0x%x bytes at 0x%x) does not fit in BAR %d "
                    + "of 0x%x bytes", device.name(), what, msixVectors, length, offset, msixBar, barSize));
        }
    }

    /** @return the MSI capability emulation, or null if the device has none */
    public MsiCapability msi() {
        return msi;
    }

    /** @return the MSI-X capability emulation, or null if the device has none */
    public MsixCapability msix() {
        return msix;
    }

    /** @return the device behind this function */
    public VfioDeviceIo device() {
        return device;
    }

    /**
     * @param pageSize the host page size (4096 on x86)
     * @return the page ranges of BAR {@code index} that must trap for MSI-X emulation; empty if none
     */
    public List<Area> trappedPages(int index, long pageSize) {
        return index == msixBar ? MsixPages.trapped(msixTableOffset, msixVectors, msixPbaOffset, pageSize) : List.of();
    }

    /**
     * @return the areas of BAR {@code index} the machine may mmap into the guest: what VFIO allows minus the
     * MSI-X pages; the rest of the BAR goes through {@link #region(int)}
     */
    public List<Area> mmapAreas(int index, long pageSize) {
        return MsixPages.mappable(device.regionInfo(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + index).mmapAreas(),
                trappedPages(index, pageSize));
    }

    /** A guest config read: device bytes with the emulated bits taken from the virtual space. */
    @Override
    public synchronized int configRead(int offset, int size) {
        if (offset < 0 || offset + size > configSize || offset + size > virtualOffset.length) {
            return 0;
        }
        boolean needDevice = false;
        for (int i = 0; i < size; i++) {
            needDevice |= virtualBits[offset + i] != (byte) 0xFF;
        }
        int fromDevice = needDevice ? (int) guestRead(CONFIG, offset, size) : 0;
        int value = 0;
        for (int i = 0; i < size; i++) {
            int o = offset + i;
            int bits = virtualBits[o] & 0xFF;
            int d = fromDevice >>> (8 * i) & 0xFF;
            int e = virtualOffset[o] >= 0 ? config().get8(virtualOffset[o]) : fixedValue[o] & 0xFF;
            value |= ((d & ~bits) | (e & bits)) << (8 * i);
        }
        return value;
    }

    /**
     * A guest config write: bytes the device may see go to it (in runs), emulated bytes go to the virtual space
     * through {@link PciFunction#configWrite}, which keeps BAR decode and the MSI/MSI-X hooks going.
     */
    @Override
    public synchronized void configWrite(int offset, int size, int value) {
        if (offset < 0 || offset + size > configSize || offset + size > virtualOffset.length) {
            return;
        }
        for (int i = 0; i < size; ) {
            int run = 1;
            if (toDevice[offset + i]) {
                while (i + run < size && toDevice[offset + i + run]) {
                    run++;
                }
                writeRuns(offset + i, run, value >>> (8 * i), true);
            }
            i += run;
        }
        for (int i = 0; i < size; ) {
            int run = 1;
            int v = virtualOffset[offset + i];
            if (v >= 0) {
                while (i + run < size && virtualOffset[offset + i + run] == v + run) {
                    run++;
                }
                writeRuns(v, run, value >>> (8 * i), false);
            }
            i += run;
        }
    }

    /**
     * After a restore ({@link PciFunction#applyConfigState}): writes to the device the guest-visible value of every
     * byte that is emulated here and also mirrored to the device (the command register's low byte, the MSI and MSI-X
     * message control), as the guest's writes did, so that a device resumed from migration data (which holds no config
     * space) decodes its BARs and knows MSI or MSI-X is on. QEMU's {@code vfio_pci_load_config()} writes the command
     * register back the same way.
     */
    public synchronized void mirrorControlToDevice() {
        int n = Math.min(configSize, virtualOffset.length);
        for (int o = 0; o < n; ) {
            if (virtualOffset[o] < 0 || !toDevice[o]) {
                o++;
                continue;
            }
            int run = 1;
            while (o + run < n && run < 2 && virtualOffset[o + run] >= 0 && toDevice[o + run] && ((o + run) & 1) == 1) {
                run++;
            }
            writeRuns(o, run, configRead(o, run), true);
            o += run;
        }
    }

    /**
     * A guest's read of the device: a device that refuses it (a pread error, a vfio-user error reply) reads as
     * all-ones, like a PCI master abort, and the first such failure is logged; the guest goes on.
     */
    private long guestRead(int region, long offset, int size) {
        try {
            return device.regionRead(region, offset, size);
        } catch (RuntimeException e) {
            accessFailed("read", region, offset, size, e);
            return size == 8 ? -1L : (1L << (8 * size)) - 1;
        }
    }

    /** A guest's write to the device: one the device refuses is dropped (the first failure is logged). */
    private void guestWrite(int region, long offset, int size, long value) {
        try {
            device.regionWrite(region, offset, size, value);
        } catch (RuntimeException e) {
            accessFailed("write", region, offset, size, e);
        }
    }

    private void accessFailed(String what, int region, long offset, int size, RuntimeException e) {
        if (!accessFailureLogged) {
            accessFailureLogged = true;
            log.error("{}: guest {} of {} bytes at region {} offset 0x{} failed: {} (further failures are not logged)",
                    device.name(), what, size, region, Long.toHexString(offset), e.getMessage());
        }
    }

    /** Writes {@code length} (1..4) bytes as accesses of 4, 2 or 1 bytes. */
    private void writeRuns(int offset, int length, int value, boolean toTheDevice) {
        int done = 0;
        while (done < length) {
            int chunk = length - done >= 4 ? 4 : length - done >= 2 ? 2 : 1;
            int part = chunk == 4 ? value >>> (8 * done) : value >>> (8 * done) & ((1 << (8 * chunk)) - 1);
            if (toTheDevice) {
                guestWrite(CONFIG, offset + done, chunk, Integer.toUnsignedLong(part));
            } else {
                super.configWrite(offset + done, chunk, part);
            }
            done += chunk;
        }
    }

    /**
     * What answers guest accesses to BAR {@code index} where it is not mmapped: the MSI-X table and PBA go to
     * the emulation, everything else to the device's region. An access that does not lie wholly inside the BAR (the
     * bus dispatches by its first byte, so a guest can cross the BAR's end) never reaches the device: it reads all
     * ones and its write is dropped, as a master abort, without a line per access (issue 15: the device would refuse
     * it, and a vfio-user client logs each refused posted write).
     */
    private final class BarRegion implements BusDevice {
        private final int index;
        private final long barSize;

        BarRegion(int index, long barSize) {
            this.index = index;
            this.barSize = barSize;
        }

        /** @return whether {@code [offset, offset + length)} lies inside the BAR (no overflow: length is 1..8) */
        private boolean inside(long offset, int length) {
            return offset >= 0 && offset <= barSize - length;
        }

        private boolean msixPart(long offset, int size) {
            if (index != msixBar) {
                return false;
            }
            long tableEnd = msixTableOffset + (long) msixVectors * MsixCapability.ENTRY_SIZE;
            long pbaEnd = msixPbaOffset + MsixCapability.pbaBytes(msixVectors);
            return (offset < tableEnd && offset + size > msixTableOffset) || (offset < pbaEnd && offset + size > msixPbaOffset);
        }

        @Override
        public long read(long offset, int size) {
            if (!inside(offset, size)) {
                return size == 8 ? -1L : (1L << (8 * size)) - 1;
            }
            return msixPart(offset, size) ? msix.read(offset, size)
                    : guestRead(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + index, offset, size);
        }

        @Override
        public void write(long offset, int size, long value) {
            if (!inside(offset, size)) {
                return;
            }
            if (msixPart(offset, size)) {
                msix.write(offset, size, value);
            } else {
                guestWrite(vfio_h.VFIO_PCI_BAR0_REGION_INDEX() + index, offset, size, value);
            }
        }
    }
}
