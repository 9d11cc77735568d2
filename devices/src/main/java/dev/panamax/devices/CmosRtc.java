package dev.panamax.devices;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;

import java.time.Clock;
import java.time.ZonedDateTime;
import java.util.Arrays;

/**
 * The PC's CMOS real-time clock (Motorola MC146818) at ports 0x70 (index) and 0x71 (data), enough
 * for Linux to read the wall-clock time at boot: seconds, minutes, hours, day of week, day, month,
 * year and century in BCD, 24-hour mode, never "update in progress". Writes to the time registers
 * are ignored (the guest's clock is the host's); the rest of the 128-byte CMOS RAM reads back what
 * was written. No alarm or periodic interrupt (IRQ 8) is generated. The NMI mask (bit 7 of a write to the index
 * port) is not kept: KVM delivers NMIs regardless.
 *
 * <p>Snapshot ({@link Snapshottable}, tag {@value #STATE_TAG}, version {@value #STATE_VERSION}): u8 index (0..127),
 * u8 REG_B (bit 1 set, bit 2 clear: 24-hour BCD), then the 114 bytes of CMOS RAM from 0x0E to 0x7F (the byte at
 * CENTURY, 0x32, is 0: the century is read from the clock). The time is the host's clock, so it is not saved;
 * registers 0x00..0x0D other than REG_B never change.
 */
public final class CmosRtc implements BusDevice, Snapshottable {
    /** The index port; the data port is the next one. */
    public static final int BASE_PORT = 0x70;
    /** Ports decoded: 0x70 and 0x71. */
    public static final int PORT_COUNT = 2;

    private static final int SECONDS = 0x00, MINUTES = 0x02, HOURS = 0x04, DAY_OF_WEEK = 0x06,
            DAY_OF_MONTH = 0x07, MONTH = 0x08, YEAR = 0x09, REG_A = 0x0A, REG_B = 0x0B, REG_C = 0x0C,
            REG_D = 0x0D, CENTURY = 0x32;

    /** The snapshot format's tag and version. */
    public static final String STATE_TAG = "CMOS";
    public static final int STATE_VERSION = 1;
    /** The first byte of the RAM the guest may write (after REG_D), as saved. */
    private static final int RAM_START = REG_D + 1;

    private final Clock clock;
    private final byte[] ram = new byte[128];
    private int index;

    /** @param clock the time the guest reads (UTC) */
    public CmosRtc(Clock clock) {
        this.clock = clock;
        ram[REG_A] = 0x26;        // 32.768 kHz time base, 1024 Hz rate, UIP clear
        ram[REG_B] = 0x02;        // 24-hour mode, BCD, no interrupts
        ram[REG_D] = (byte) 0x80; // "valid RAM and time": the battery is fine
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset == 0) {
            return 0xFF;
        }
        ZonedDateTime t = ZonedDateTime.now(clock);
        return switch (index) {
            case SECONDS -> bcd(t.getSecond());
            case MINUTES -> bcd(t.getMinute());
            case HOURS -> bcd(t.getHour());
            case DAY_OF_WEEK -> bcd(t.getDayOfWeek().getValue() % 7 + 1); // 1 = Sunday
            case DAY_OF_MONTH -> bcd(t.getDayOfMonth());
            case MONTH -> bcd(t.getMonthValue());
            case YEAR -> bcd(t.getYear() % 100);
            case CENTURY -> bcd(t.getYear() / 100);
            case REG_C -> 0; // no interrupt flags
            default -> ram[index] & 0xFF;
        };
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (offset == 0) {
            index = (int) (value & 0x7F); // bit 7 is the NMI mask
        } else if (index > REG_D && index != CENTURY) {
            ram[index] = (byte) value;
        } else if (index == REG_B) {
            ram[REG_B] = (byte) (value & ~0x04 | 0x02); // stay in BCD, 24-hour mode
        }
    }

    @Override
    public synchronized byte[] saveState() {
        return new StateWriter(STATE_TAG, STATE_VERSION).u8(index).u8(ram[REG_B])
                .raw(Arrays.copyOfRange(ram, RAM_START, ram.length)).toByteArray();
    }

    /** @throws dev.panamax.core.state.StateException as {@link Snapshottable#restoreState} says; the clock unchanged */
    @Override
    public synchronized void restoreState(byte[] state) {
        var r = new StateReader("rtc", state, STATE_TAG, STATE_VERSION);
        int newIndex = (int) r.check("index", r.u8(), 0, 0x7F);
        int regB = r.u8();
        byte[] saved = r.raw(ram.length - RAM_START);
        r.end();
        if ((regB & 0x06) != 0x02) {
            throw r.invalid(String.format("REG_B 0x%02x is not in 24-hour BCD mode (bit 1 set, bit 2 clear)", regB));
        }
        if (saved[CENTURY - RAM_START] != 0) {
            throw r.invalid("CENTURY's RAM byte is not 0");
        }
        index = newIndex;
        ram[REG_B] = (byte) regB;
        System.arraycopy(saved, 0, ram, RAM_START, saved.length);
    }

    /** Register names for {@code --trace}: "index SECONDS" (the register selected), "data REG_B". */
    @Override
    public synchronized String describe(long offset, int size, boolean write, long value) {
        if (offset == 0) {
            return write ? "index " + registerName((int) (value & 0x7F)) + ((value & 0x80) != 0 ? " NMI off" : "") : "index";
        }
        return "data " + registerName(index);
    }

    /**
     * @param index a CMOS register index, 0..127
     * @return its MC146818 name (SECONDS, SECONDS_ALARM, ..., REG_A..REG_D), CENTURY at 0x32 (the PC's), else "RAM 0x.."
     */
    public static String registerName(int index) {
        return switch (index) {
            case SECONDS -> "SECONDS";
            case 0x01 -> "SECONDS_ALARM";
            case MINUTES -> "MINUTES";
            case 0x03 -> "MINUTES_ALARM";
            case HOURS -> "HOURS";
            case 0x05 -> "HOURS_ALARM";
            case DAY_OF_WEEK -> "DAY_OF_WEEK";
            case DAY_OF_MONTH -> "DAY_OF_MONTH";
            case MONTH -> "MONTH";
            case YEAR -> "YEAR";
            case REG_A -> "REG_A";
            case REG_B -> "REG_B";
            case REG_C -> "REG_C";
            case REG_D -> "REG_D";
            case CENTURY -> "CENTURY";
            default -> String.format("RAM 0x%02x", index);
        };
    }

    /** @return {@code v} (0..99) in binary-coded decimal */
    static int bcd(int v) {
        return (v / 10) << 4 | (v % 10);
    }
}
