package dev.panamax.firmware.acpi;

import static dev.panamax.firmware.acpi.Aml.device;
import static dev.panamax.firmware.acpi.Aml.eisaId;
import static dev.panamax.firmware.acpi.Aml.integer;
import static dev.panamax.firmware.acpi.Aml.name;
import static dev.panamax.firmware.acpi.Aml.packageOp;
import static dev.panamax.firmware.acpi.Aml.string;

import dev.panamax.firmware.MpTable;
import java.util.ArrayList;
import java.util.List;

/**
 * The Differentiated System Description Table (ACPI 6.5, 5.2.11.1), signature "DSDT", revision 2 (64-bit AML
 * integers): the header and an AML definition block, written with {@link Aml}:
 * <pre>
 * Name (\_S5, Package () { 5, 5, 0, 0 })          // SLP_TYPa = SLP_TYPb = 5 for soft-off (7.4.2)
 * Scope (\_SB) {
 *   Device (PCI0) {                               // the host bridge: PCI Express root complex (6.1.5 _HID, 6.1.2 _CID)
 *     _HID EisaId ("PNP0A08"), _CID EisaId ("PNP0A03"), _SEG 0, _BBN bus start, _UID 0
 *     _CRS: WordBusNumber (bus range), IO (Decode16, 0xCF8, 0xCF8, 1, 8), WordIO per I/O window,
 *           DWordMemory (32-bit MMIO window), QWordMemory (64-bit window, when not empty)
 *     _PRT: Package { Package { (device << 16) | 0xFFFF, pin 0..3, 0, GSI } ... }   // 6.2.13
 *   }
 *   Device (MRES) { _HID EisaId ("PNP0C02"), _UID 0, _CRS Memory32Fixed (the ECAM window) }
 *   Device (COM1) { _HID EisaId ("PNP0501"), _UID 1, _CRS IO (0x3F8, len 8), IRQNoFlags (4) }
 *   Device (RTC)  { _HID EisaId ("PNP0B00"), _CRS IO (0x70, len 2), IRQNoFlags (8) }
 *   Device (KBD)  { _HID EisaId ("PNP0303"), _CRS IO (0x60), IO (0x64), IRQNoFlags (1) }
 *   Device (MOU)  { _HID EisaId ("PNP0F13"), _CRS IRQNoFlags (12) }
 *   Device (C000) { _HID "ACPI0007", _UID 0 } ...  // one processor device per CPU (8.4 "Declaring Processors")
 * }
 * </pre>
 * The motherboard resource device reserves the ECAM window: Linux uses MMCONFIG only where it is reserved, in e820
 * or in a PNP0C01/PNP0C02 device's _CRS ({@code arch/x86/pci/mmconfig-shared.c}, {@code is_mmconf_reserved}).
 * The keyboard and mouse devices let Linux's i8042 driver find the controller through PNP
 * ({@code drivers/input/serio/i8042-acpipnpio.h}).
 */
public final class Dsdt {
    private Dsdt() {
    }

    /** Revision of the DSDT: 2 and above mean 64-bit integers (5.2.11.1). */
    public static final int REVISION = 2;
    /** The _PRT address of every function of a device: (device &lt;&lt; 16) | 0xFFFF (6.2.13). */
    public static final int PRT_ANY_FUNCTION = 0xFFFF;
    /** The sleep type value Panamax's PM1a_CNT takes for S5 (soft off). */
    public static final int SLP_TYP_S5 = 5;
    /** COM1's I/O base and IRQ. */
    public static final int COM1_PORT = 0x3F8;
    /** COM1's IRQ. */
    public static final int COM1_IRQ = 4;
    /** The CMOS RTC's I/O base. */
    public static final int RTC_PORT = 0x70;
    /** The RTC's IRQ. */
    public static final int RTC_IRQ = 8;
    /** The i8042 data port. */
    public static final int I8042_DATA_PORT = 0x60;
    /** The i8042 command/status port. */
    public static final int I8042_COMMAND_PORT = 0x64;
    /** The keyboard's IRQ. */
    public static final int KBD_IRQ = 1;
    /** The aux (mouse) port's IRQ. */
    public static final int AUX_IRQ = 12;

    /**
     * @param m the machine
     * @return the DSDT, checksum set
     */
    public static byte[] build(AcpiMachine m) {
        return AcpiTable.of("DSDT", REVISION, aml(m));
    }

    /** @return the DSDT's definition block, the AML after the header */
    public static byte[] aml(AcpiMachine m) {
        List<byte[]> sb = new ArrayList<>();
        sb.add(hostBridge(m));
        AcpiMachine.Window ecam = m.ecamWindow();
        sb.add(device("MRES", name("_HID", eisaId("PNP0C02")), name("_UID", integer(0)),
                name("_CRS", AmlResource.resourceTemplate(AmlResource.memory32Fixed(ecam.base(), ecam.size())))));
        sb.add(device("COM1", name("_HID", eisaId("PNP0501")), name("_UID", integer(1)),
                name("_CRS", AmlResource.resourceTemplate(AmlResource.io(COM1_PORT, COM1_PORT, 1, 8),
                        AmlResource.irqNoFlags(COM1_IRQ)))));
        sb.add(device("RTC", name("_HID", eisaId("PNP0B00")),
                name("_CRS", AmlResource.resourceTemplate(AmlResource.io(RTC_PORT, RTC_PORT, 1, 2),
                        AmlResource.irqNoFlags(RTC_IRQ)))));
        sb.add(device("KBD", name("_HID", eisaId("PNP0303")),
                name("_CRS", AmlResource.resourceTemplate(AmlResource.io(I8042_DATA_PORT, I8042_DATA_PORT, 1, 1),
                        AmlResource.io(I8042_COMMAND_PORT, I8042_COMMAND_PORT, 1, 1), AmlResource.irqNoFlags(KBD_IRQ)))));
        sb.add(device("MOU", name("_HID", eisaId("PNP0F13")),
                name("_CRS", AmlResource.resourceTemplate(AmlResource.irqNoFlags(AUX_IRQ)))));
        for (int i = 0; i < m.cpus(); i++) {
            sb.add(device(processorName(i), name("_HID", string("ACPI0007")), name("_UID", integer(i))));
        }
        return Aml.concat(
                name("\\_S5", packageOp(integer(SLP_TYP_S5), integer(SLP_TYP_S5), integer(0), integer(0))),
                Aml.scope("\\_SB", sb.toArray(byte[][]::new)));
    }

    /**
     * @param cpu the CPU's index, its ACPI processor UID
     * @return the processor device's name: "C" and three hex digits
     */
    public static String processorName(int cpu) {
        if (cpu < 0 || cpu > 0xFFF) {
            throw new IllegalArgumentException("processor " + cpu + " has no name in C000..CFFF");
        }
        return String.format("C%03X", cpu);
    }

    private static byte[] hostBridge(AcpiMachine m) {
        List<byte[]> crs = new ArrayList<>();
        crs.add(AmlResource.wordBusNumber(m.busStart(), m.busEnd()));
        crs.add(AmlResource.io(0xCF8, 0xCF8, 1, 8));
        for (AcpiMachine.Window w : m.pciIo()) {
            crs.add(AmlResource.wordIo((int) w.base(), (int) (w.end() - 1)));
        }
        crs.add(AmlResource.dwordMemory(false, m.mmio32().base(), m.mmio32().size()));
        if (m.mmio64().size() > 0) {
            crs.add(AmlResource.qwordMemory(false, m.mmio64().base(), m.mmio64().size()));
        }
        List<byte[]> prt = new ArrayList<>();
        for (MpTable.InterruptSource s : m.pciInterrupts()) {
            prt.add(packageOp(integer((long) s.device() << 16 | PRT_ANY_FUNCTION), integer(s.pin() - 1), integer(0),
                    integer(s.ioApicInput())));
        }
        return device("PCI0",
                name("_HID", eisaId("PNP0A08")),
                name("_CID", eisaId("PNP0A03")),
                name("_SEG", integer(0)),
                name("_BBN", integer(m.busStart())),
                name("_UID", integer(0)),
                name("_CRS", AmlResource.resourceTemplate(crs.toArray(byte[][]::new))),
                name("_PRT", packageOp(prt)));
    }
}
