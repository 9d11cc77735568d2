package dev.panamax.pci;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.core.state.Snapshottable;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PCI bus 0 with configuration mechanism #1 (PCI Local Bus Spec 3.0, 3.2.2.3.2) and the PCI Express enhanced
 * configuration access mechanism ({@link #ecam()}), both over the same functions, the host bridge at 00:00.0, and
 * INTx# routing to I/O APIC inputs.
 *
 * <h2>Locking</h2>
 * Each config access runs under the selected function's own monitor ({@code synchronized (device)}; a
 * {@link PciFunction} takes the same one), so accesses to one function are serialized and accesses to different
 * functions from several vCPUs run at once: an assigned function whose config access is a socket round trip to a
 * stalled vfio-user server holds up only itself. No bus-wide lock is held while calling into a device. The slot
 * table is an atomic array ({@link #attach} serializes on a private lock that accesses never take) and
 * CONFIG_ADDRESS is one volatile dword, read once per CONFIG_DATA access. As on real hardware that latch is shared
 * by all CPUs: the guest serializes its CONFIG_ADDRESS/CONFIG_DATA pairs (Linux: {@code pci_config_lock},
 * arch/x86/pci/direct.c).
 *
 * <h2>Ports (register both on the PIO {@link Bus})</h2>
 * <ul>
 * <li>{@link #CONFIG_ADDRESS} 0xCF8, 4 ports: {@link #configAddressPort()}. Only 32-bit accesses at 0xCF8 reach
 * CONFIG_ADDRESS; narrower ones (Linux's probe writes a byte to 0xCFB) read all ones and are dropped.</li>
 * <li>{@link #CONFIG_DATA} 0xCFC, 4 ports: {@link #configDataPort()}. 1, 2 and 4-byte accesses at any offset
 * that stays within the dword reach the register CONFIG_ADDRESS selects plus that offset.</li>
 * </ul>
 * CONFIG_ADDRESS: bit 31 enable, bits 23..16 bus, 15..11 device, 10..8 function, 7..2 register (dword);
 * bits 30..24 and 1..0 read as 0. With enable clear, or for a bus other than 0, or an absent device, reads
 * return all ones (a master abort) and writes are dropped.
 *
 * <h2>INTx#</h2>
 * Device d's pin p (1..4 = INTA#..INTD#) goes to I/O APIC input {@code 16 + (d + p - 1) mod 4} (the usual
 * "swizzle", as kvmtool does): level-triggered, active low. {@link #intxRoutes} describes that wiring for the
 * firmware's tables.
 *
 * <h2>Snapshot</h2>
 * {@link Snapshottable}: CONFIG_ADDRESS, which function sits at each device/function number, and the config space of
 * the functions emulated here (the host bridge and plain {@link PciFunction}s); the format is {@link PciBusState}'s.
 * Functions of other kinds (subclasses such as an assigned device's) are named in it but their state is their
 * owner's.
 */
public final class PciBus implements Snapshottable {
    private static final Logger log = LoggerFactory.getLogger(PciBus.class);
    /** The CONFIG_ADDRESS port. */
    public static final int CONFIG_ADDRESS = 0xCF8;
    /** The CONFIG_DATA port (through 0xCFF). */
    public static final int CONFIG_DATA = 0xCFC;
    /** Number of ports each of the two registers takes. */
    public static final int PORT_COUNT = 4;
    /** Bytes of ECAM window per bus: 32 devices x 8 functions x 4 KiB. */
    public static final long ECAM_BUS_SIZE = 1 << 20;
    /** Bytes of ECAM window per function: its 4 KiB of config space. */
    public static final int ECAM_FUNCTION_SIZE = 1 << 12;
    /** CONFIG_ADDRESS bit 31: configuration access enabled. */
    public static final int CONFIG_ENABLE = 0x8000_0000;
    /** Devices per bus. */
    public static final int DEVICES = 32;
    /** Functions per device. */
    public static final int FUNCTIONS = 8;
    /** The I/O APIC input of INTA# of device 0; PCI interrupts take inputs 16..19 (above the 16 ISA IRQs). */
    public static final int FIRST_GSI = 16;
    /** Number of I/O APIC inputs PCI interrupts are spread over. */
    public static final int GSI_COUNT = 4;

    /** Function {@code f} of device {@code d} at index {@code d * FUNCTIONS + f}; written only under {@link #attachLock}. */
    private final AtomicReferenceArray<PciDevice> slots = new AtomicReferenceArray<>(DEVICES * FUNCTIONS);
    /** Serializes {@link #attach}; never taken by a config access. */
    private final Object attachLock = new Object();
    private final IntFunction<IrqLine> gsiLines;
    private final PciHostBridge hostBridge = new PciHostBridge();
    /** The CONFIG_ADDRESS latch, shared by all vCPUs as on real hardware. */
    private volatile int configAddress;

    /**
     * @param gsiLines gives the interrupt line for a GSI (e.g. {@code gsi -> level -> vm.irqLine(gsi, level)});
     *                 attached {@link PciFunction}s with an interrupt pin are connected through it; null for none
     */
    public PciBus(IntFunction<IrqLine> gsiLines) {
        this.gsiLines = gsiLines;
        attach(0, 0, hostBridge);
    }

    /** @return the host bridge at 00:00.0 */
    public PciHostBridge hostBridge() {
        return hostBridge;
    }

    /**
     * Puts {@code device} at {@code slot}.{@code function}; an emulated function with an interrupt pin gets its
     * INTx# line connected, and its interrupt line register set to the GSI (as PC firmware does).
     *
     * @throws IllegalArgumentException if the slot is out of range or taken
     */
    public void attach(int slot, int function, PciDevice device) {
        if (slot < 0 || slot >= DEVICES || function < 0 || function >= FUNCTIONS) {
            throw new IllegalArgumentException(String.format("PCI %s: 00:%02x.%d is not a device/function", device.name(), slot, function));
        }
        synchronized (attachLock) {
            PciDevice taken = slots.get(slot * FUNCTIONS + function);
            if (taken != null) {
                throw new IllegalArgumentException(String.format("PCI %s: 00:%02x.%d is taken by %s",
                        device.name(), slot, function, taken.name()));
            }
            // Wire INTx# before the function becomes visible, so the guest never sees it without its interrupt line.
            int pin = device.interruptPin();
            if (pin >= 1 && pin <= 4 && device instanceof PciFunction f) {
                int gsi = gsi(slot, pin);
                synchronized (f.lock()) {
                    f.config().set8(PciConfigSpace.INTERRUPT_LINE, gsi);
                }
                if (gsiLines != null) {
                    f.connectIntx(gsiLines.apply(gsi));
                }
            }
            slots.set(slot * FUNCTIONS + function, device);
        }
        log.debug("PCI 00:{}.{} {}", String.format("%02x", slot), function, device.name());
    }

    /**
     * Puts {@code device} as function 0 of the first free device number.
     *
     * @return the device number
     * @throws IllegalStateException if all 32 are taken
     */
    public int attach(PciDevice device) {
        synchronized (attachLock) {
            for (int slot = 0; slot < DEVICES; slot++) {
                if (slots.get(slot * FUNCTIONS) == null) {
                    attach(slot, 0, device);
                    return slot;
                }
            }
        }
        throw new IllegalStateException("PCI bus 0 is full: no device number for " + device.name());
    }

    /** @return the device at {@code slot}.{@code function}, or null */
    public PciDevice device(int slot, int function) {
        if (slot < 0 || slot >= DEVICES || function < 0 || function >= FUNCTIONS) {
            throw new IndexOutOfBoundsException(String.format("00:%02x.%d is not a device/function", slot, function));
        }
        return slots.get(slot * FUNCTIONS + function);
    }

    /**
     * The INTx# swizzle.
     *
     * @param slot device number 0..31
     * @param pin  1..4 for INTA#..INTD#
     * @return the I/O APIC input (GSI) the pin drives, 16..19
     */
    public static int gsi(int slot, int pin) {
        if (pin < 1 || pin > 4) {
            throw new IllegalArgumentException("PCI interrupt pin " + pin + " is not 1..4 (INTA#..INTD#)");
        }
        return FIRST_GSI + (slot + pin - 1) % GSI_COUNT;
    }

    /**
     * How a device's INTx# pin is wired: device {@code device}'s pin {@code pin} drives I/O APIC input {@code gsi}
     * ({@link #gsi}). The machine hands these to the firmware's interrupt tables (the MP table's interrupt entries,
     * the ACPI {@code _PRT} of the host bridge).
     *
     * @param device the device number on bus 0, 0..31
     * @param pin    1..4 for INTA#..INTD#
     * @param gsi    the I/O APIC input, 16..19: level-triggered, active low
     */
    public record IntxRoute(int device, int pin, int gsi) {
    }

    /**
     * @return the INTx# wiring of this bus: one route per device and pin in use (functions of one device may share
     *         a pin), by device number then function
     */
    public List<IntxRoute> intxRoutes() {
        var list = new ArrayList<IntxRoute>();
        for (int slot = 0; slot < DEVICES; slot++) {
            for (int fn = 0; fn < FUNCTIONS; fn++) {
                PciDevice d = slots.get(slot * FUNCTIONS + fn);
                int pin = d == null ? 0 : d.interruptPin();
                if (pin >= 1 && pin <= 4) {
                    var route = new IntxRoute(slot, pin, gsi(slot, pin));
                    if (!list.contains(route)) {
                        list.add(route);
                    }
                }
            }
        }
        return list;
    }

    /** @throws dev.panamax.core.state.StateException never: saving reads the functions' config spaces */
    @Override
    public byte[] saveState() {
        return PciBusState.save(this);
    }

    /**
     * @throws dev.panamax.core.state.StateException as {@link Snapshottable#restoreState} says, and when the
     *         functions on this bus are not the snapshot's (another name at a device/function number, one missing or
     *         added); the bus and every function are then unchanged
     */
    @Override
    public void restoreState(byte[] state) {
        PciBusState.restore(this, state);
    }

    /** @return the function at index {@code devfn} (device {@code << 3 |} function), or null */
    PciDevice slot(int devfn) {
        return slots.get(devfn);
    }

    int configAddress() {
        return configAddress;
    }

    void configAddress(int value) {
        configAddress = value;
    }

    /** @return the CONFIG_ADDRESS register as a device for ports 0xCF8..0xCFB */
    public BusDevice configAddressPort() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                if (offset != 0 || size != 4) {
                    return Bus.ones(size);
                }
                return Integer.toUnsignedLong(configAddress);
            }

            @Override
            public void write(long offset, int size, long value) {
                if (offset == 0 && size == 4) {
                    configAddress = (int) value & (CONFIG_ENABLE | 0x00FF_FFFC);
                }
            }

            @Override
            public String describe(long offset, int size, boolean write, long value) {
                return offset == 0 && size == 4 ? "CONFIG_ADDRESS " + PciRegisterNames.configAddress((int) value)
                        : "CONFIG_ADDRESS (not a dword access: ignored)";
            }
        };
    }

    /** @return the CONFIG_DATA register as a device for ports 0xCFC..0xCFF */
    public BusDevice configDataPort() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                int address = configAddress;
                return configRead(selected(address, offset, size), register(address, offset), size);
            }

            @Override
            public void write(long offset, int size, long value) {
                int address = configAddress;
                configWrite(selected(address, offset, size), register(address, offset), size, value);
            }

            @Override
            public String describe(long offset, int size, boolean write, long value) {
                return describeConfigData(offset, size);
            }
        };
    }

    /**
     * The PCI Express enhanced configuration access mechanism (ECAM, PCIe Base Spec 6.0, 7.2.2) over the same
     * functions as the ports: a {@link X86Layout#ECAM_SIZE} MMIO window where bus b, device d, function f has its
     * 4 KiB of config space at offset {@code b << 20 | d << 15 | f << 12} (address bits 27..20, 19..15, 14..12;
     * bits 11..0 are the register). Register it with {@link #registerEcam}. 1, 2 and 4-byte accesses within a dword
     * reach the function (an 8-byte one is two 4-byte ones, low dword first); other widths, accesses across a
     * dword, buses other than 0 and absent functions read all ones and drop writes. A function with 256 bytes of
     * config space reads 0 from 0x100 on and drops writes there ({@link PciFunction#configRead}). Linux uses ECAM
     * when the ACPI MCFG table names this window.
     */
    public BusDevice ecam() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                if (size == 8) {
                    return ecamRead(offset, 4) | ecamRead(offset + 4, 4) << 32;
                }
                return ecamRead(offset, size);
            }

            @Override
            public void write(long offset, int size, long value) {
                if (size == 8) {
                    ecamWrite(offset, 4, value);
                    ecamWrite(offset + 4, 4, value >>> 32);
                } else {
                    ecamWrite(offset, size, value);
                }
            }

            @Override
            public String describe(long offset, int size, boolean write, long value) {
                PciDevice d = ecamSelected(offset, size == 8 ? 4 : size);
                return "ECAM " + PciRegisterNames.bdf((int) (offset >>> 20) & 0xFF, (int) (offset >>> 15) & 0x1F,
                        (int) (offset >>> 12) & 0x7) + " " + PciRegisterNames.name((int) (offset & 0xFFF))
                        + (size == 8 ? " (8 bytes: two dwords)" : "") + (d == null ? " (no device)" : " (" + d.name() + ")");
            }
        };
    }

    private long ecamRead(long offset, int size) {
        return configRead(ecamSelected(offset, size), (int) (offset & 0xFFF), size);
    }

    private void ecamWrite(long offset, int size, long value) {
        configWrite(ecamSelected(offset, size), (int) (offset & 0xFFF), size, value);
    }

    /** A config read of {@code device} (null: master abort, all ones) under that function's own monitor only. */
    private static long configRead(PciDevice device, int register, int size) {
        if (device == null) {
            return Bus.ones(size);
        }
        int value;
        synchronized (device) {
            value = device.configRead(register, size);
        }
        return Integer.toUnsignedLong(value) & Bus.ones(size);
    }

    /** A config write to {@code device} (null: master abort, dropped) under that function's own monitor only. */
    private static void configWrite(PciDevice device, int register, int size, long value) {
        if (device != null) {
            synchronized (device) {
                device.configWrite(register, size, (int) value);
            }
        }
    }

    /** @return the function an ECAM access selects, or null (master abort): bus 0 only */
    private PciDevice ecamSelected(long offset, int size) {
        if (offset < 0 || offset >= X86Layout.ECAM_SIZE || (size != 1 && size != 2 && size != 4) || (offset & 3) + size > 4) {
            return null;
        }
        int bus = (int) (offset >>> 20) & 0xFF;
        return bus == 0 ? slots.get((int) (offset >>> 12) & 0xFF) : null;
    }

    /** Registers {@link #ecam()} on the MMIO bus over {@link X86Layout#ECAM_BASE}, {@link X86Layout#ECAM_SIZE} bytes. */
    public void registerEcam(Bus mmio) {
        mmio.register(X86Layout.ECAM_BASE, X86Layout.ECAM_SIZE, "pci-ecam", ecam());
    }

    /** Registers {@link #configAddressPort()} and {@link #configDataPort()} on the PIO bus. */
    public void registerPorts(Bus pio) {
        pio.register(CONFIG_ADDRESS, PORT_COUNT, "pci-config-address", configAddressPort());
        pio.register(CONFIG_DATA, PORT_COUNT, "pci-config-data", configDataPort());
    }

    /** @return the function CONFIG_ADDRESS value {@code address} selects for a CONFIG_DATA access, or null (master abort) */
    private PciDevice selected(int address, long offset, int size) {
        if ((address & CONFIG_ENABLE) == 0 || offset < 0 || offset + size > PORT_COUNT || (size != 1 && size != 2 && size != 4)) {
            return null;
        }
        int bus = (address >>> 16) & 0xFF;
        return bus == 0 ? slots.get((address >>> 8) & 0xFF) : null;
    }

    /** "CONFIG_DATA 00:03.0 BAR0 (name)": the function and register CONFIG_ADDRESS selects, plus the port's offset. */
    String describeConfigData(long offset, int size) {
        int address = configAddress;
        PciDevice d = selected(address, offset, size);
        return "CONFIG_DATA " + PciRegisterNames.bdf(address) + " " + PciRegisterNames.name(register(address, offset))
                + ((address & CONFIG_ENABLE) == 0 ? " (disabled)" : d == null ? " (no device)" : " (" + d.name() + ")");
    }

    /** @return the config-space byte offset a CONFIG_DATA access at port offset {@code offset} reaches */
    private static int register(int address, long offset) {
        return (address & 0xFC) + (int) offset;
    }
}
