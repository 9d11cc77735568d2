package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;

/**
 * The Fixed ACPI Description Table, signature "FACP" (ACPI 6.5, 5.2.9, table 5.9), revision 6, 276 bytes. Not
 * hardware-reduced: Panamax emulates a PM1a event block and a PM1a control block in I/O space, the SCI is an
 * I/O APIC input, and the reset register is an I/O port. There is no SMI command port (SMI_CMD 0: "the system
 * does not support System Management mode", so ACPI mode is always on and SCI_EN reads 1), no PM timer, no GPE
 * blocks, no fixed power or sleep buttons. Both the 32-bit and the X_ 64-bit fields are filled (the same values).
 *
 * <p>Offsets of the fields written (table 5.9): see the constants.
 */
public final class Fadt {
    private Fadt() {
    }

    /** Revision of the FADT in ACPI 6.x. */
    public static final int REVISION = 6;
    /** FADT Minor Version: ACPI 6.3's (iasl 2020 knows it; Linux ignores it). */
    public static final int MINOR_VERSION = 3;
    /** Length of a revision-6 FADT, up to and including the Hypervisor Vendor Identity. */
    public static final int SIZE = 276;

    /** u32 FIRMWARE_CTRL: the FACS. */
    public static final int FIRMWARE_CTRL = 36;
    /** u32 DSDT. */
    public static final int DSDT = 40;
    /** u8 Preferred_PM_Profile. */
    public static final int PREFERRED_PM_PROFILE = 45;
    /** u16 SCI_INT: the SCI's interrupt (the 8259 IRQ, or the GSI when an I/O APIC is present). */
    public static final int SCI_INT = 46;
    /** u32 SMI_CMD: 0 for none. */
    public static final int SMI_CMD = 48;
    /** u32 PM1a_EVT_BLK. */
    public static final int PM1A_EVT_BLK = 56;
    /** u32 PM1a_CNT_BLK. */
    public static final int PM1A_CNT_BLK = 64;
    /** u32 PM_TMR_BLK. */
    public static final int PM_TMR_BLK = 76;
    /** u32 GPE0_BLK. */
    public static final int GPE0_BLK = 80;
    /** u8 PM1_EVT_LEN. */
    public static final int PM1_EVT_LEN = 88;
    /** u8 PM1_CNT_LEN. */
    public static final int PM1_CNT_LEN = 89;
    /** u8 PM_TMR_LEN. */
    public static final int PM_TMR_LEN = 91;
    /** u8 GPE0_BLK_LEN. */
    public static final int GPE0_BLK_LEN = 92;
    /** u16 IAPC_BOOT_ARCH. */
    public static final int IAPC_BOOT_ARCH = 109;
    /** u32 Flags. */
    public static final int FLAGS = 112;
    /** GAS RESET_REG. */
    public static final int RESET_REG = 116;
    /** u8 RESET_VALUE. */
    public static final int RESET_VALUE = 128;
    /** u8 FADT Minor Version. */
    public static final int FADT_MINOR_VERSION = 131;
    /** u64 X_FIRMWARE_CTRL. */
    public static final int X_FIRMWARE_CTRL = 132;
    /** u64 X_DSDT. */
    public static final int X_DSDT = 140;
    /** GAS X_PM1a_EVT_BLK. */
    public static final int X_PM1A_EVT_BLK = 148;
    /** GAS X_PM1a_CNT_BLK. */
    public static final int X_PM1A_CNT_BLK = 172;

    /** IAPC_BOOT_ARCH bit 0, LEGACY_DEVICES: there are ISA devices the OS finds through the DSDT (COM1, RTC). */
    public static final int LEGACY_DEVICES = 1;
    /** IAPC_BOOT_ARCH bit 1, 8042: the motherboard has an 8042 keyboard controller at ports 0x60/0x64. */
    public static final int I8042 = 1 << 1;

    /** Flags bit 0, WBINVD: the processor's WBINVD works correctly (required of ACPI 2.0+ platforms). */
    public static final int WBINVD = 1;
    /** Flags bit 4, PWR_BUTTON: the power button, if any, is a control-method device, not a fixed feature. */
    public static final int PWR_BUTTON = 1 << 4;
    /** Flags bit 5, SLP_BUTTON: likewise for the sleep button. */
    public static final int SLP_BUTTON = 1 << 5;
    /** Flags bit 10, RESET_REG_SUP: the RESET_REG reset mechanism is supported. */
    public static final int RESET_REG_SUP = 1 << 10;

    /**
     * @param m            the machine: SCI, PM1a blocks, reset register
     * @param facsAddress  guest-physical address of the FACS
     * @param dsdtAddress  guest-physical address of the DSDT
     * @return the 276-byte FADT, checksum set
     */
    public static byte[] build(AcpiMachine m, long facsAddress, long dsdtAddress) {
        ByteBuffer b = AcpiTable.start("FACP", SIZE, REVISION);
        b.putInt(FIRMWARE_CTRL, (int) facsAddress);
        b.putInt(DSDT, (int) dsdtAddress);
        b.put(PREFERRED_PM_PROFILE, (byte) 0);       // Unspecified
        b.putShort(SCI_INT, (short) m.sciIrq());
        b.putInt(SMI_CMD, 0);
        b.putInt(PM1A_EVT_BLK, m.pm1aEventPort());
        b.putInt(PM1A_CNT_BLK, m.pm1aControlPort());
        b.put(PM1_EVT_LEN, (byte) AcpiMachine.PM1_EVT_LEN);
        b.put(PM1_CNT_LEN, (byte) AcpiMachine.PM1_CNT_LEN);
        // PM_TMR_BLK/LEN, GPE0/1_BLK/LEN stay 0: none. P_LVL2_LAT > 100 and P_LVL3_LAT > 1000: no C2/C3.
        b.putShort(96, (short) 101);
        b.putShort(98, (short) 1001);
        b.putShort(IAPC_BOOT_ARCH, (short) (LEGACY_DEVICES | I8042));
        b.putInt(FLAGS, WBINVD | PWR_BUTTON | SLP_BUTTON | RESET_REG_SUP);
        putGas(b, RESET_REG, Gas.SYSTEM_IO, 8, Gas.BYTE_ACCESS, m.resetPort());
        b.put(RESET_VALUE, (byte) m.resetValue());
        b.put(FADT_MINOR_VERSION, (byte) MINOR_VERSION);
        b.putLong(X_FIRMWARE_CTRL, facsAddress);
        b.putLong(X_DSDT, dsdtAddress);
        putGas(b, X_PM1A_EVT_BLK, Gas.SYSTEM_IO, 8 * AcpiMachine.PM1_EVT_LEN, Gas.UNDEFINED_ACCESS, m.pm1aEventPort());
        putGas(b, X_PM1A_CNT_BLK, Gas.SYSTEM_IO, 8 * AcpiMachine.PM1_CNT_LEN, Gas.UNDEFINED_ACCESS, m.pm1aControlPort());
        return AcpiTable.finish(b);
    }

    private static void putGas(ByteBuffer b, int offset, int space, int bitWidth, int accessSize, long address) {
        b.put(offset, Gas.encode(space, bitWidth, 0, accessSize, address));
    }
}
