package dev.panamax.pci;

import static dev.panamax.pci.PciConfigSpace.BASE_ADDRESS_0;
import static dev.panamax.pci.PciConfigSpace.COMMAND;
import static dev.panamax.pci.PciConfigSpace.COMMAND_INTX_DISABLE;
import static dev.panamax.pci.PciConfigSpace.COMMAND_IO;
import static dev.panamax.pci.PciConfigSpace.COMMAND_MEMORY;
import static dev.panamax.pci.PciConfigSpace.STATUS;
import static dev.panamax.pci.PciConfigSpace.STATUS_INTERRUPT;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An emulated PCI function with a type 0 header: its {@link PciConfigSpace}, up to six BARs (PCI 3.0,
 * 6.2.5.1) with the sizing protocol, BAR decode tracking (command register memory/I/O enable and the BAR
 * addresses) reported to {@link BarListener}s, and its INTx# pin.
 *
 * <p>A BAR decodes when its command enable bit is set and its address is valid: not 0, and the whole range
 * inside the space (below 64 KiB for I/O on x86, below 4 GiB for 32-bit memory, where the top page is the
 * sizing pattern and counts as unmapped, as QEMU does; for 64-bit memory, neither dword may hold the
 * all-ones sizing pattern, since Linux sizes the two halves one after the other).
 *
 * <p>All guest accesses take this object's lock, so a function is safe to use from several vCPU threads.
 */
public class PciFunction implements PciDevice {
    /** Number of BAR slots in a type 0 header. */
    public static final int BAR_COUNT = 6;
    /** The x86 I/O port space: 64 KiB. */
    public static final long IO_SPACE_SIZE = 0x10000;
    private static final long UNMAPPED = -1;

    private final String name;
    private final PciConfigSpace config;
    private final PciBar[] bars = new PciBar[BAR_COUNT];
    private final BusDevice[] regions = new BusDevice[BAR_COUNT];
    /** Where each BAR decodes now, as last reported to the listeners; {@link #UNMAPPED} when not. */
    private final long[] mapped = {UNMAPPED, UNMAPPED, UNMAPPED, UNMAPPED, UNMAPPED, UNMAPPED};
    private final List<BarListener> listeners = new CopyOnWriteArrayList<>();
    private final List<Hook> hooks = new ArrayList<>();
    private final List<Hook> readHooks = new ArrayList<>();
    private IrqLine intx;
    private boolean intxLevel;
    private boolean intxDriven;

    private record Hook(int offset, int length, Runnable action) {
    }

    /**
     * @param name   a short name for logs and bus registrations
     * @param config its configuration space; the header is filled in by the caller or subclass
     */
    public PciFunction(String name, PciConfigSpace config) {
        this.name = name;
        this.config = config;
    }

    @Override
    public String name() {
        return name;
    }

    /** @return the configuration space (device-model side; guest accesses go through {@link #configWrite}) */
    public PciConfigSpace config() {
        return config;
    }

    /** @return the lock guarding this function's state, for capabilities that have registers outside config space */
    public final Object lock() {
        return this;
    }

    /**
     * Reads config space; registers beyond its size (extended registers of a 256-byte space) read as 0. The read
     * hooks whose range the access overlaps run first.
     */
    @Override
    public synchronized int configRead(int offset, int size) {
        if (offset < 0 || offset + size > config.size()) {
            return 0;
        }
        int end = offset + size;
        for (Hook h : readHooks) {
            if (offset < h.offset() + h.length() && h.offset() < end) {
                h.action().run();
            }
        }
        return config.read(offset, size);
    }

    /** Writes config space through its masks; writes beyond its size are dropped. */
    @Override
    public synchronized void configWrite(int offset, int size, int value) {
        if (offset < 0 || offset + size > config.size()) {
            return;
        }
        config.write(offset, size, value);
        int end = offset + size;
        if (offset < BASE_ADDRESS_0 + 4 * BAR_COUNT && end > COMMAND) {
            updateBars();
            updateIntx();
        }
        for (Hook h : hooks) {
            if (offset < h.offset() + h.length() && h.offset() < end) {
                h.action().run();
            }
        }
    }

    /**
     * Runs {@code action} after every guest config write that overlaps {@code [offset, offset + length)};
     * used by capabilities to react to their registers.
     */
    public synchronized void addConfigWriteHook(int offset, int length, Runnable action) {
        hooks.add(new Hook(offset, length, action));
    }

    /**
     * Runs {@code action} before every guest config read that overlaps {@code [offset, offset + length)}, with this
     * function's lock held: for registers whose value the device computes when read (e.g. a data window onto a BAR:
     * virtio 1.2, 4.1.4 "PCI configuration access capability"). The action updates config space with the
     * {@code set*} methods.
     *
     * @throws IllegalArgumentException if the range is empty or outside config space
     */
    public synchronized void addConfigReadHook(int offset, int length, Runnable action) {
        if (offset < 0 || length < 1 || offset + length > config.size()) {
            throw new IllegalArgumentException(String.format(
                    "%s: config read hook of %d bytes at 0x%x is outside %d bytes of config space", name, length, offset, config.size()));
        }
        readHooks.add(new Hook(offset, length, action));
    }

    /** Adds a listener for BAR map and unmap events. */
    public void addBarListener(BarListener listener) {
        listeners.add(listener);
    }

    /**
     * Declares BAR {@code index}: sets the read-only type flags and the RW address bits above the size. A 64-bit
     * BAR also takes slot {@code index + 1}, its upper dword.
     *
     * @param index  0..5 (0..4 for a 64-bit BAR)
     * @param bar    the BAR
     * @param region what answers accesses in the BAR's range once mapped (offset from the BAR's start), or null
     *               if the machine maps it some other way (e.g. a memslot)
     * @throws IllegalArgumentException if the slot is out of range or taken
     */
    public synchronized void setBar(int index, PciBar bar, BusDevice region) {
        int slots = bar.is64() ? 2 : 1;
        if (index < 0 || index + slots > BAR_COUNT) {
            throw new IllegalArgumentException(name + ": BAR " + index + " (" + bar.kind() + ") is out of range 0..5");
        }
        for (int i = index; i < index + slots; i++) {
            if (bars[i] != null || (i > 0 && bars[i - 1] != null && bars[i - 1].is64())) {
                throw new IllegalArgumentException(name + ": BAR slot " + i + " is already taken");
            }
        }
        bars[index] = bar;
        regions[index] = region;
        long addressMask = ~(bar.size() - 1);
        int low = BASE_ADDRESS_0 + 4 * index;
        config.set32(low, bar.flags());
        config.setWritable(low, 4, (int) addressMask & (bar.isIo() ? PciBar.IO_MASK : PciBar.MEM_MASK));
        if (bar.is64()) {
            config.set32(low + 4, 0);
            config.setWritable(low + 4, 4, (int) (addressMask >>> 32));
        }
    }

    /** @return BAR {@code index}, or null if the slot is empty or the upper half of a 64-bit BAR */
    public synchronized PciBar bar(int index) {
        return bars[index];
    }

    /** @return what answers accesses in BAR {@code index}, or null */
    public synchronized BusDevice region(int index) {
        return regions[index];
    }

    /** @return the address programmed in BAR {@code index} (whether or not it decodes), flags stripped */
    public synchronized long barAddress(int index) {
        PciBar bar = requireBar(index);
        int lowOffset = BASE_ADDRESS_0 + 4 * index;
        long low = Integer.toUnsignedLong(config.get32(lowOffset) & (bar.isIo() ? PciBar.IO_MASK : PciBar.MEM_MASK));
        return bar.is64() ? (Integer.toUnsignedLong(config.get32(lowOffset + 4)) << 32) | low : low;
    }

    /**
     * Programs BAR {@code index} as firmware does (e.g. from {@link PciBarAllocator}); the guest may move it later.
     *
     * @param address guest-physical address or port, aligned to the BAR's size
     * @throws IllegalArgumentException if misaligned or out of the BAR's space
     */
    public synchronized void setBarAddress(int index, long address) {
        PciBar bar = requireBar(index);
        if ((address & (bar.size() - 1)) != 0 || (!bar.is64() && (address >>> 32) != 0)
                || (bar.isIo() && address + bar.size() > IO_SPACE_SIZE)) {
            throw new IllegalArgumentException(String.format(
                    "%s: BAR %d (%s, 0x%x bytes) cannot be at 0x%x", name, index, bar.kind(), bar.size(), address));
        }
        int lowOffset = BASE_ADDRESS_0 + 4 * index;
        config.set32(lowOffset, (int) address | bar.flags());
        if (bar.is64()) {
            config.set32(lowOffset + 4, (int) (address >>> 32));
        }
        updateBars();
    }

    /**
     * @return where BAR {@code index} decodes now, or -1 if it does not (decode disabled or address invalid)
     */
    public synchronized long decodedAddress(int index) {
        return mapped[index];
    }

    private PciBar requireBar(int index) {
        if (index < 0 || index >= BAR_COUNT || bars[index] == null) {
            throw new IllegalArgumentException(name + ": no BAR " + index);
        }
        return bars[index];
    }

    /** Compares every BAR's decode state with what the listeners know and tells them the difference. */
    private void updateBars() {
        int command = config.get16(COMMAND);
        for (int i = 0; i < BAR_COUNT; i++) {
            PciBar bar = bars[i];
            if (bar == null) {
                continue;
            }
            long now = decode(i, bar, command);
            long was = mapped[i];
            if (now == was) {
                continue;
            }
            mapped[i] = now;
            if (was != UNMAPPED) {
                for (BarListener l : listeners) {
                    l.barUnmapped(this, i, bar, was);
                }
            }
            if (now != UNMAPPED) {
                for (BarListener l : listeners) {
                    l.barMapped(this, i, bar, now);
                }
            }
        }
    }

    private long decode(int index, PciBar bar, int command) {
        if ((command & (bar.isIo() ? COMMAND_IO : COMMAND_MEMORY)) == 0) {
            return UNMAPPED;
        }
        long address = barAddress(index);
        long last = address + bar.size() - 1;
        if (address == 0) {
            return UNMAPPED;
        }
        return switch (bar.kind()) {
            case IO -> last < IO_SPACE_SIZE ? address : UNMAPPED;
            case MEMORY32 -> last < 0xFFFF_FFFFL ? address : UNMAPPED;
            case MEMORY64 -> {
                boolean sizing = sizingPattern(BASE_ADDRESS_0 + 4 * index) || sizingPattern(BASE_ADDRESS_0 + 4 * index + 4);
                yield sizing || Long.compareUnsigned(last, address) < 0 || last == -1 ? UNMAPPED : address;
            }
        };
    }

    /** @return true if the dword at {@code offset} has all its RW bits set: software is sizing the BAR */
    private boolean sizingPattern(int offset) {
        int mask = config.writableMask(offset, 4);
        return mask != 0 && (config.get32(offset) & mask) == mask;
    }

    /**
     * Declares the function's interrupt pin (config offset 0x3D, read-only to software). Call before
     * {@link PciBus#attach}, which routes the pin.
     *
     * @param pin 0 for none, 1..4 for INTA#..INTD#
     * @throws IllegalArgumentException for another value
     */
    public synchronized void setInterruptPin(int pin) {
        if (pin < 0 || pin > 4) {
            throw new IllegalArgumentException(name + ": interrupt pin " + pin + " is not 0..4");
        }
        config.set8(PciConfigSpace.INTERRUPT_PIN, pin);
    }

    /** Connects the function's INTx# pin to an interrupt controller input (see {@link PciBus#gsi}). */
    public synchronized void connectIntx(IrqLine line) {
        this.intx = line;
        intxDriven = false;
        updateIntx();
    }

    /**
     * The device model raises or lowers its INTx# pin (level-triggered): sets or clears status bit INTERRUPT
     * and drives the line unless command bit INTX_DISABLE is set (PCI 3.0, 6.2.2 and 6.2.3).
     */
    public synchronized void setIntx(boolean level) {
        intxLevel = level;
        int status = config.get16(STATUS);
        config.set16(STATUS, level ? status | STATUS_INTERRUPT : status & ~STATUS_INTERRUPT);
        updateIntx();
    }

    private void updateIntx() {
        boolean drive = intxLevel && (config.get16(COMMAND) & COMMAND_INTX_DISABLE) == 0;
        if (intx != null && drive != intxDriven) {
            intxDriven = drive;
            intx.set(drive);
        }
    }

    /** The identity bytes a saved config space must share with the function it is restored into. */
    private static final int[][] IDENTITY = {{PciConfigSpace.VENDOR_ID, 4}, {PciConfigSpace.REVISION_ID, 4},
            {PciConfigSpace.HEADER_TYPE, 1}, {PciConfigSpace.SUBSYSTEM_VENDOR_ID, 4}};

    /**
     * A function's saved configuration state, parsed and checked against the function by {@link #readConfigState},
     * applied by {@link #applyConfigState}.
     *
     * @param config    the whole config space as it read ({@link PciConfigSpace#snapshot()})
     * @param intxLevel the INTx# level the device model drove
     */
    public record SavedConfig(byte[] config, boolean intxLevel) {
    }

    /**
     * Writes this function's config state: le16 config size (256 or 4096), the config space's bytes, u8 INTx# level
     * (0/1). Called with the vCPUs paused.
     */
    public synchronized void saveConfigState(StateWriter w) {
        w.u16(config.size()).raw(config.snapshot()).bool(intxLevel);
    }

    /**
     * Reads what {@link #saveConfigState} wrote and checks it against this function, changing nothing.
     *
     * @return the parsed state, for {@link #applyConfigState}
     * @throws dev.panamax.core.state.StateException if it is truncated, of another config size, or of another
     *         function (vendor, device, revision, class, header type or subsystem ids differ)
     */
    public synchronized SavedConfig readConfigState(StateReader r) {
        int size = r.u16();
        if (size != config.size()) {
            throw r.invalid(name + ": saved config space is " + size + " bytes, this function's " + config.size());
        }
        byte[] saved = r.raw(size);
        boolean level = r.bool(name + " intx_level");
        for (int[] field : IDENTITY) {
            for (int i = field[0]; i < field[0] + field[1]; i++) {
                if (saved[i] != (byte) config.get8(i)) {
                    throw r.invalid(String.format("%s: saved function is %04x:%04x class %06x, this one %04x:%04x class %06x "
                                    + "(byte 0x%02x differs)", name, (saved[0] & 0xFF) | (saved[1] & 0xFF) << 8,
                            (saved[2] & 0xFF) | (saved[3] & 0xFF) << 8,
                            (saved[9] & 0xFF) | (saved[10] & 0xFF) << 8 | (saved[11] & 0xFF) << 16,
                            config.get16(PciConfigSpace.VENDOR_ID), config.get16(PciConfigSpace.DEVICE_ID), config.classCode(), i));
                }
            }
        }
        return new SavedConfig(saved, level);
    }

    /**
     * Puts a state from {@link #readConfigState} back, before any vCPU runs: the RW and RW1C bits of config space
     * ({@link PciConfigSpace#restoreWritable}), status bit INTERRUPT from the INTx# level; then the BAR listeners learn
     * where the BARs decode now (so the memory model is rebuilt through them) and every config write hook runs once
     * (capabilities re-derive their state, e.g. MSI routes). The INTx# line is not driven: the interrupt controller's
     * state is restored on its own ({@code KVM_SET_IRQCHIP}); the function only remembers the level it drives.
     */
    public synchronized void applyConfigState(SavedConfig saved) {
        config.restoreWritable(saved.config());
        intxLevel = saved.intxLevel();
        int status = config.get16(STATUS);
        config.set16(STATUS, intxLevel ? status | STATUS_INTERRUPT : status & ~STATUS_INTERRUPT);
        updateBars();
        intxDriven = intx != null && intxLevel && (config.get16(COMMAND) & COMMAND_INTX_DISABLE) == 0;
        for (Hook h : hooks) {
            h.action().run();
        }
    }

    @Override
    public String toString() {
        return name;
    }
}
