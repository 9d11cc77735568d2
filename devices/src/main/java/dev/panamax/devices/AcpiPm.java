package dev.panamax.devices;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The ACPI fixed-hardware power management registers a PC's chipset has, as the FADT describes them to the
 * guest (ACPI 6.5, 4.8 "ACPI Hardware Model", 4.8.3 "PM1 Event Grouping" and "PM1 Control Grouping", 4.8.3.6
 * "Reset Register"): one block of I/O ports at {@value #BASE_PORT}:
 *
 * <pre>
 *   0x600  PM1a_STS  (2 bytes)  PM1 event block: status, write 1 to clear   FADT PM1a_EVT_BLK, PM1_EVT_LEN 4
 *   0x602  PM1a_EN   (2 bytes)  PM1 event block: enables
 *   0x604  PM1a_CNT  (2 bytes)  PM1 control: SCI_EN (bit 0), SLP_TYP (bits 10-12), SLP_EN (bit 13)
 *                                                                         FADT PM1a_CNT_BLK, PM1_CNT_LEN 2
 *   0x608  RESET_REG (1 byte)   writing {@value #RESET_VALUE} resets the machine   FADT RESET_REG, RESET_VALUE
 * </pre>
 *
 * <p>What a Linux guest does with them: it reads PM1a_CNT and, since SCI_EN reads 1 (the FADT has no SMI_CMD:
 * there is no SMM firmware, the machine is always in ACPI mode), takes ACPI as enabled; it clears PM1a_STS and
 * writes PM1a_EN; {@code poweroff} ({@code acpi_power_off}, ACPI 7.4.2 "\_Sx") writes the SLP_TYP of the DSDT's
 * {@code \_S5} package (5) with SLP_EN, which this device takes as the machine switching off; {@code reboot}
 * (reboot type ACPI, Linux's first choice when the FADT sets RESET_REG_SUP) writes RESET_VALUE to RESET_REG.
 *
 * <p>No event ever sets a status bit here (no power button, no PM timer, no GPE), so the SCI (IRQ
 * {@value #SCI_IRQ}, level, active high as the MADT says) is never raised; PM1a_EN is only stored. Sleep states
 * other than S5 are not offered by the DSDT; a write of another SLP_TYP with SLP_EN is logged and ignored.
 * Reads of bytes that are no register (0x606, 0x607) return 0.
 *
 * <p>Snapshot ({@link Snapshottable}, tag {@value #STATE_TAG}, version {@value #STATE_VERSION}): le16 PM1a_STS,
 * le16 PM1a_EN, le16 PM1a_CNT (SCI_EN set, SLP_EN clear: as the register reads).
 */
public final class AcpiPm implements BusDevice, Snapshottable {
    private static final Logger log = LoggerFactory.getLogger(AcpiPm.class);

    /** The first port: PM1a_EVT_BLK. */
    public static final int BASE_PORT = 0x600;
    /** Ports decoded: 0x600 .. 0x608. */
    public static final int PORT_COUNT = 9;
    /** Offset of PM1a_EVT_BLK (PM1a_STS, then PM1a_EN), and its length (FADT PM1_EVT_LEN). */
    public static final int PM1_EVT_OFFSET = 0, PM1_EVT_LEN = 4;
    /** Offset of PM1a_CNT_BLK, and its length (FADT PM1_CNT_LEN). */
    public static final int PM1_CNT_OFFSET = 4, PM1_CNT_LEN = 2;
    /** Offset of the reset register (FADT RESET_REG, a byte in I/O space). */
    public static final int RESET_OFFSET = 8;
    /** The value that resets the machine when written to RESET_REG (FADT RESET_VALUE). */
    public static final int RESET_VALUE = 0x01;
    /** The ISA IRQ of the system control interrupt (FADT SCI_INT). */
    public static final int SCI_IRQ = 9;
    /** SLP_TYP of the S5 (soft off) state, the first value of the DSDT's {@code \_S5} package. */
    public static final int S5_SLP_TYP = 5;

    /** PM1_CNT bits (ACPI 6.5, table 4.13). */
    static final int SCI_EN = 1, SLP_TYP_SHIFT = 10, SLP_TYP_MASK = 0x7, SLP_EN = 1 << 13;

    /** The snapshot format's tag and version. */
    public static final String STATE_TAG = "PM1A";
    public static final int STATE_VERSION = 1;

    private final Runnable onPowerOff;
    private final Runnable onReset;
    private int status;
    private int enable;
    /** PM1a_CNT as last written, without SLP_EN (write-only, reads 0); SCI_EN is always set. */
    private int control = SCI_EN;

    /**
     * @param onPowerOff called when the guest enters S5 (SLP_TYP 5 with SLP_EN in PM1a_CNT)
     * @param onReset    called when the guest writes RESET_VALUE to RESET_REG
     */
    public AcpiPm(Runnable onPowerOff, Runnable onReset) {
        this.onPowerOff = onPowerOff;
        this.onReset = onReset;
    }

    @Override
    public synchronized long read(long offset, int size) {
        long value = 0;
        for (int i = 0; i < size; i++) {
            value |= (long) readByte(offset + i) << (8 * i);
        }
        return value;
    }

    private int readByte(long port) {
        return switch ((int) port) {
            case 0 -> status & 0xFF;
            case 1 -> status >>> 8;
            case 2 -> enable & 0xFF;
            case 3 -> enable >>> 8;
            case 4 -> control & 0xFF;
            case 5 -> (control >>> 8) & ~(SLP_EN >>> 8);
            default -> 0;
        };
    }

    @Override
    public void write(long offset, int size, long value) {
        boolean powerOff = false;
        boolean reset = false;
        synchronized (this) {
            for (int i = 0; i < size; i++) {
                int port = (int) offset + i;
                int b = (int) (value >>> (8 * i)) & 0xFF;
                switch (port) {
                    case 0, 1 -> status &= ~(b << (8 * port)); // write 1 to clear
                    case 2 -> enable = (enable & 0xFF00) | b;
                    case 3 -> enable = (enable & 0x00FF) | (b << 8);
                    case 4 -> control = (control & 0xFF00) | b | SCI_EN;
                    case 5 -> {
                        int written = (control & 0x00FF) | (b << 8);
                        control = (written & ~SLP_EN) | SCI_EN;
                        if ((written & SLP_EN) != 0) {
                            int slpTyp = (written >>> SLP_TYP_SHIFT) & SLP_TYP_MASK;
                            if (slpTyp == S5_SLP_TYP) {
                                powerOff = true;
                            } else {
                                log.warn("guest asked for sleep type {} (PM1a_CNT 0x{}): only S5 is offered; ignored",
                                        slpTyp, Integer.toHexString(written));
                            }
                        }
                    }
                    case RESET_OFFSET -> reset |= b == RESET_VALUE;
                    default -> { }
                }
            }
        }
        // Outside the lock: the callbacks stop the machine.
        if (powerOff) {
            onPowerOff.run();
        }
        if (reset) {
            onReset.run();
        }
    }

    @Override
    public synchronized byte[] saveState() {
        return new StateWriter(STATE_TAG, STATE_VERSION).u16(status).u16(enable).u16(control).toByteArray();
    }

    /** @throws dev.panamax.core.state.StateException as {@link Snapshottable#restoreState} says; the registers unchanged */
    @Override
    public synchronized void restoreState(byte[] state) {
        var r = new StateReader("acpi-pm", state, STATE_TAG, STATE_VERSION);
        int newStatus = r.u16();
        int newEnable = r.u16();
        int newControl = r.u16();
        r.end();
        if ((newControl & SCI_EN) == 0 || (newControl & SLP_EN) != 0) {
            throw r.invalid(String.format("PM1a_CNT 0x%04x has SCI_EN clear or SLP_EN set", newControl));
        }
        status = newStatus;
        enable = newEnable;
        control = newControl;
    }

    @Override
    public String describe(long offset, int size, boolean write, long value) {
        return switch ((int) offset) {
            case 0, 1 -> "PM1a_STS";
            case 2, 3 -> "PM1a_EN";
            case 4, 5 -> {
                if (!write || size < 2) {
                    yield "PM1a_CNT";
                }
                int v = (int) value;
                yield "PM1a_CNT SLP_TYP=" + ((v >>> SLP_TYP_SHIFT) & SLP_TYP_MASK)
                        + ((v & SLP_EN) != 0 ? " SLP_EN" : "");
            }
            case RESET_OFFSET -> "RESET_REG";
            default -> null;
        };
    }
}
