package dev.panamax.firmware.acpi;

import dev.panamax.core.memory.X86Layout;
import dev.panamax.firmware.MpTable;
import java.util.List;

/**
 * What the ACPI tables describe, in the firmware's own terms (no dependency on pci-bus): the CPUs and interrupt
 * controllers for the MADT, the PM1 and reset registers for the FADT, the ECAM window for the MCFG, and the PCI host
 * bridge's windows and INTx# wiring for the DSDT. Addresses are guest-physical, sizes in bytes, ports I/O-space.
 *
 * <p>{@link #pc} gives the values Panamax's machine uses for everything but what it decides at start (CPUs, ECAM
 * base, MMIO windows, PCI wiring); the defaults are the constants here.
 *
 * @param cpus             number of CPUs: local APIC ids and ACPI processor UIDs 0..cpus-1
 * @param localApicAddress the local APICs' MMIO base (MADT, Local Interrupt Controller Address)
 * @param ioApicId         the I/O APIC's id, 0..255
 * @param ioApicAddress    the I/O APIC's MMIO base, below 4 GiB
 * @param ioApicGsiBase    the first GSI of the I/O APIC's inputs
 * @param sciIrq           the ISA IRQ (and GSI) of the SCI, 0..15
 * @param pm1aEventPort    I/O port of the PM1a event block ({@value #PM1_EVT_LEN} bytes: PM1 status, PM1 enable)
 * @param pm1aControlPort  I/O port of the PM1a control block ({@value #PM1_CNT_LEN} bytes)
 * @param resetPort        I/O port of the 8-bit reset register
 * @param resetValue       the byte written there to reset the machine
 * @param ecamBase         the ECAM base: the address of bus 0's configuration space (MCFG's Base Address), 1 MiB
 *                         aligned; the window the buses decode ({@link #ecamWindow}) ends below 4 GiB
 * @param busStart         first PCI bus number the ECAM window decodes (and the host bridge's _BBN)
 * @param busEnd           last PCI bus number
 * @param mmio32           the host bridge's 32-bit MMIO window (BARs below 4 GiB)
 * @param mmio64           the host bridge's 64-bit MMIO window (above RAM); size 0 for none
 * @param pciIo            the host bridge's I/O windows
 * @param pciInterrupts    the PCI INTx# wiring on bus 0, as {@link MpTable#withPciBus} takes it: device, pin 1..4
 *                         (INTA#..INTD#), the I/O APIC input (GSI)
 */
public record AcpiMachine(int cpus, long localApicAddress, int ioApicId, long ioApicAddress, int ioApicGsiBase,
                          int sciIrq, int pm1aEventPort, int pm1aControlPort, int resetPort, int resetValue,
                          long ecamBase, int busStart, int busEnd, Window mmio32, Window mmio64, List<Window> pciIo,
                          List<MpTable.InterruptSource> pciInterrupts) {
    /** PM1_EVT_LEN: the event block's bytes (PM1 status, then PM1 enable, 2 bytes each). */
    public static final int PM1_EVT_LEN = 4;
    /** PM1_CNT_LEN: the control block's bytes. */
    public static final int PM1_CNT_LEN = 2;
    /** Bytes of ECAM per bus: 32 devices, 8 functions, 4 KiB of configuration space each (PCIe base spec, 7.2.2). */
    public static final long ECAM_BYTES_PER_BUS = 1L << 20;
    /** The I/O ports a PC's host bridge forwards: all but the configuration ports 0xCF8..0xCFF. */
    public static final List<Window> PC_PCI_IO = List.of(new Window(0x0000, 0x0CF8), new Window(0x0D00, 0xF300));

    /**
     * A range of addresses or ports.
     *
     * @param base the first address
     * @param size bytes (or ports); 0 for an empty window
     */
    public record Window(long base, long size) {
        /** @throws IllegalArgumentException if the size is negative or the window wraps past 2^64 */
        public Window {
            if (size < 0 || size > 0 && Long.compareUnsigned(base + size - 1, base) < 0) {
                throw new IllegalArgumentException(String.format("window 0x%X + 0x%X", base, size));
            }
        }

        /** @return the first address past the window */
        public long end() {
            return base + size;
        }

        /** @return whether the two windows share an address */
        public boolean overlaps(Window o) {
            return size > 0 && o.size > 0 && base < o.end() && o.base < end();
        }
    }

    /** @throws IllegalArgumentException naming the first field out of range or windows that overlap */
    public AcpiMachine {
        pciIo = List.copyOf(pciIo);
        pciInterrupts = List.copyOf(pciInterrupts);
        check(cpus >= 1 && cpus <= 0xFFFF, "cpus " + cpus);
        check(ioApicId >= 0 && ioApicId <= 0xFF, "I/O APIC id " + ioApicId);
        check(sciIrq >= 0 && sciIrq < MpTable.ISA_IRQS, "SCI IRQ " + sciIrq);
        for (int port : new int[] {pm1aEventPort, pm1aControlPort, resetPort}) {
            check(port > 0 && port <= 0xFFFF - 4, String.format("PM or reset port 0x%X", port));
        }
        check(resetValue >= 0 && resetValue <= 0xFF, "reset value " + resetValue);
        check(busStart >= 0 && busStart <= busEnd && busEnd <= 0xFF, "bus range " + busStart + ".." + busEnd);
        Window ecam = ecamWindow(ecamBase, busStart, busEnd);
        check(ecamBase % ECAM_BYTES_PER_BUS == 0 && ecam.end() <= X86Layout.HIGH_RAM_START,
                String.format("ECAM window 0x%X + 0x%X (must be 1 MiB aligned and below 4 GiB)", ecam.base(), ecam.size()));
        check(mmio32.size() > 0 && mmio32.end() <= X86Layout.HIGH_RAM_START,
                String.format("32-bit MMIO window %s (must be non-empty, below 4 GiB)", mmio32));
        check(!mmio32.overlaps(ecam) && !mmio64.overlaps(ecam),
                String.format("an MMIO window overlaps the ECAM window 0x%X + 0x%X", ecam.base(), ecam.size()));
        for (Window w : pciIo) {
            check(w.size() > 0 && w.end() <= 0x10000, "PCI I/O window " + w);
        }
        for (MpTable.InterruptSource s : pciInterrupts) {
            check(s.bus() == 0 && s.device() >= 0 && s.device() < 32 && s.pin() >= 1 && s.pin() <= 4,
                    "PCI interrupt " + s + " (bus 0, device 0..31, pin 1..4)");
        }
    }

    /**
     * Where the machine's ACPI fixed-hardware registers are: the device that implements them (Panamax's
     * {@code dev.panamax.devices.AcpiPm}) owns these numbers, and the machine passes them here.
     *
     * @param sciIrq          the ISA IRQ (and GSI) of the SCI
     * @param pm1aEventPort   I/O port of the PM1a event block ({@value #PM1_EVT_LEN} bytes)
     * @param pm1aControlPort I/O port of the PM1a control block ({@value #PM1_CNT_LEN} bytes)
     * @param resetPort       I/O port of the 8-bit reset register
     * @param resetValue      the byte that resets the machine when written there
     */
    public record PmRegisters(int sciIrq, int pm1aEventPort, int pm1aControlPort, int resetPort, int resetValue) {
    }

    /**
     * A Panamax PC: local APIC and I/O APIC at {@link X86Layout}'s addresses, I/O APIC id {@code cpus} (as
     * {@link MpTable#standard} numbers it) with GSI base 0, ECAM for buses 0..255 (256 MiB), the host bridge
     * forwarding {@link #PC_PCI_IO}.
     *
     * @param cpus          number of CPUs
     * @param pm            the PM1 and reset registers
     * @param ecamBase      the ECAM window's base (256 MiB, e.g. 0xE000_0000)
     * @param mmio32        the 32-bit MMIO window, not overlapping the ECAM window
     * @param mmio64        the 64-bit MMIO window, or size 0 for none
     * @param pciInterrupts the PCI INTx# wiring on bus 0 (for the DSDT's _PRT)
     * @return the description
     * @throws IllegalArgumentException as the constructor
     */
    public static AcpiMachine pc(int cpus, PmRegisters pm, long ecamBase, Window mmio32, Window mmio64,
                                 List<MpTable.InterruptSource> pciInterrupts) {
        return new AcpiMachine(cpus, X86Layout.LAPIC_BASE, cpus & 0xFF, X86Layout.IOAPIC_BASE, 0, pm.sciIrq(),
                pm.pm1aEventPort(), pm.pm1aControlPort(), pm.resetPort(), pm.resetValue(), ecamBase, 0, 0xFF, mmio32,
                mmio64, PC_PCI_IO, pciInterrupts);
    }

    /**
     * @return the guest-physical range the ECAM window decodes: 1 MiB per bus from bus {@link #busStart} (to reserve
     *         in e820 and in the DSDT's motherboard resources)
     */
    public Window ecamWindow() {
        return ecamWindow(ecamBase, busStart, busEnd);
    }

    private static Window ecamWindow(long ecamBase, int busStart, int busEnd) {
        return new Window(ecamBase + busStart * ECAM_BYTES_PER_BUS, (busEnd - busStart + 1L) * ECAM_BYTES_PER_BUS);
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalArgumentException("ACPI machine: " + what + " is out of range");
        }
    }
}
