package dev.panamax.pci;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.memory.X86Layout;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PCI bus 0 with configuration mechanism #1 (PCI Local Bus Spec 3.0, 3.2.2.3.2) and the PCI Express enhanced
 * configuration access mechanism ({@link #ecam()}), both over the same functions and under the same lock (this
 * object), the host bridge at 00:00.0, and INTx# routing to I/O APIC inputs.
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
 */
public final class PciBus {
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

    private final PciDevice[][] slots = new PciDevice[DEVICES][FUNCTIONS];
    private final IntFunction<IrqLine> gsiLines;
    private final PciHostBridge hostBridge = new PciHostBridge();
    private int configAddress;

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
    public synchronized void attach(int slot, int function, PciDevice device) {
        if (slot < 0 || slot >= DEVICES || function < 0 || function >= FUNCTIONS) {
            throw new IllegalArgumentException(String.format("PCI %s: 00:%02x.%d is not a device/function", device.name(), slot, function));
        }
        if (slots[slot][function] != null) {
            throw new IllegalArgumentException(String.format("PCI %s: 00:%02x.%d is taken by %s",
                    device.name(), slot, function, slots[slot][function].name()));
        }
        slots[slot][function] = device;
        int pin = device.interruptPin();
        if (pin >= 1 && pin <= 4 && device instanceof PciFunction f) {
            int gsi = gsi(slot, pin);
            f.config().set8(PciConfigSpace.INTERRUPT_LINE, gsi);
            if (gsiLines != null) {
                f.connectIntx(gsiLines.apply(gsi));
            }
        }
        log.debug("PCI 00:{}.{} {}", String.format("%02x", slot), function, device.name());
    }

    /**
     * Puts {@code device} as function 0 of the first free device number.
     *
     * @return the device number
     * @throws IllegalStateException if all 32 are taken
     */
    public synchronized int attach(PciDevice device) {
        for (int slot = 0; slot < DEVICES; slot++) {
            if (slots[slot][0] == null) {
                attach(slot, 0, device);
                return slot;
            }
        }
        throw new IllegalStateException("PCI bus 0 is full: no device number for " + device.name());
    }

    /** @return the device at {@code slot}.{@code function}, or null */
    public synchronized PciDevice device(int slot, int function) {
        return slots[slot][function];
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
    public synchronized List<IntxRoute> intxRoutes() {
        var list = new ArrayList<IntxRoute>();
        for (int slot = 0; slot < DEVICES; slot++) {
            for (int fn = 0; fn < FUNCTIONS; fn++) {
                PciDevice d = slots[slot][fn];
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

    /** @return the CONFIG_ADDRESS register as a device for ports 0xCF8..0xCFB */
    public BusDevice configAddressPort() {
        return new BusDevice() {
            @Override
            public long read(long offset, int size) {
                if (offset != 0 || size != 4) {
                    return Bus.ones(size);
                }
                synchronized (PciBus.this) {
                    return Integer.toUnsignedLong(configAddress);
                }
            }

            @Override
            public void write(long offset, int size, long value) {
                if (offset == 0 && size == 4) {
                    synchronized (PciBus.this) {
                        configAddress = (int) value & (CONFIG_ENABLE | 0x00FF_FFFC);
                    }
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
                synchronized (PciBus.this) {
                    PciDevice d = selected(offset, size);
                    return d == null ? Bus.ones(size)
                            : Integer.toUnsignedLong(d.configRead(register(offset), size)) & Bus.ones(size);
                }
            }

            @Override
            public void write(long offset, int size, long value) {
                synchronized (PciBus.this) {
                    PciDevice d = selected(offset, size);
                    if (d != null) {
                        d.configWrite(register(offset), size, (int) value);
                    }
                }
            }

            @Override
            public String describe(long offset, int size, boolean write, long value) {
                synchronized (PciBus.this) {
                    return describeConfigData(offset, size);
                }
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
                synchronized (PciBus.this) {
                    PciDevice d = ecamSelected(offset, size == 8 ? 4 : size);
                    return "ECAM " + PciRegisterNames.bdf((int) (offset >>> 20) & 0xFF, (int) (offset >>> 15) & 0x1F,
                            (int) (offset >>> 12) & 0x7) + " " + PciRegisterNames.name((int) (offset & 0xFFF))
                            + (size == 8 ? " (8 bytes: two dwords)" : "") + (d == null ? " (no device)" : " (" + d.name() + ")");
                }
            }
        };
    }

    private long ecamRead(long offset, int size) {
        synchronized (this) {
            PciDevice d = ecamSelected(offset, size);
            return d == null ? Bus.ones(size)
                    : Integer.toUnsignedLong(d.configRead((int) (offset & 0xFFF), size)) & Bus.ones(size);
        }
    }

    private void ecamWrite(long offset, int size, long value) {
        synchronized (this) {
            PciDevice d = ecamSelected(offset, size);
            if (d != null) {
                d.configWrite((int) (offset & 0xFFF), size, (int) value);
            }
        }
    }

    /** @return the function an ECAM access selects, or null (master abort): bus 0 only */
    private PciDevice ecamSelected(long offset, int size) {
        if (offset < 0 || offset >= X86Layout.ECAM_SIZE || (size != 1 && size != 2 && size != 4) || (offset & 3) + size > 4) {
            return null;
        }
        int bus = (int) (offset >>> 20) & 0xFF;
        return bus == 0 ? slots[(int) (offset >>> 15) & 0x1F][(int) (offset >>> 12) & 0x7] : null;
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

    /** @return the function CONFIG_ADDRESS selects for this CONFIG_DATA access, or null (master abort) */
    private PciDevice selected(long offset, int size) {
        if ((configAddress & CONFIG_ENABLE) == 0 || offset + size > PORT_COUNT || (size != 1 && size != 2 && size != 4)) {
            return null;
        }
        int bus = (configAddress >>> 16) & 0xFF;
        int slot = (configAddress >>> 11) & 0x1F;
        int function = (configAddress >>> 8) & 0x7;
        return bus == 0 ? slots[slot][function] : null;
    }

    /** "CONFIG_DATA 00:03.0 BAR0 (name)": the function and register CONFIG_ADDRESS selects, plus the port's offset. */
    String describeConfigData(long offset, int size) {
        PciDevice d = selected(offset, size);
        return "CONFIG_DATA " + PciRegisterNames.bdf(configAddress) + " " + PciRegisterNames.name(register(offset))
                + ((configAddress & CONFIG_ENABLE) == 0 ? " (disabled)" : d == null ? " (no device)" : " (" + d.name() + ")");
    }

    private int register(long offset) {
        return (configAddress & 0xFC) + (int) offset;
    }
}
