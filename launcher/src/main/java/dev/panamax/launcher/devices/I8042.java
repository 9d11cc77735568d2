package dev.panamax.launcher.devices;

import dev.panamax.core.bus.BusDevice;

/**
 * The PS/2 controller (Intel 8042) at ports 0x60 (data) and 0x64 (status and command), reduced to
 * what a guest without keyboard or mouse needs: enough answers that Linux's i8042 driver finds a
 * controller with nothing attached, and the command that resets the machine. Linux's
 * {@code reboot -f} ends here: command 0xFE pulses the CPU reset line.
 *
 * <p>Commands (written to 0x64): 0x20 read the controller configuration byte (CTR), 0x60 write it
 * (next data byte), 0xAA self test (answers 0x55), 0xAB / 0xA9 interface tests (0x00 / 0xFF: no
 * aux port), 0xA7/0xA8/0xAD/0xAE disable/enable ports, 0xD1 write output port (bit 0 clear
 * resets), 0xD4 write to aux (swallowed: no mouse), 0xFE reset. Bytes written to 0x60 for the
 * keyboard get no answer: no keyboard is attached. This device is registered over 0x60..0x64 and
 * ignores the speaker port 0x61 (KVM's in-kernel PIT claims it first).
 */
public final class I8042 implements BusDevice {
    /** First port decoded: 0x60. */
    public static final int BASE_PORT = 0x60;
    /** Ports decoded: 0x60..0x64. */
    public static final int PORT_COUNT = 5;

    private static final int DATA = 0, STATUS_COMMAND = 4;
    private static final int STATUS_OBF = 0x01, STATUS_SYS = 0x04, STATUS_CMD = 0x08;
    private static final int CMD_READ_CTR = 0x20, CMD_WRITE_CTR = 0x60, CMD_AUX_DISABLE = 0xA7,
            CMD_AUX_ENABLE = 0xA8, CMD_AUX_TEST = 0xA9, CMD_SELF_TEST = 0xAA, CMD_KBD_TEST = 0xAB,
            CMD_KBD_DISABLE = 0xAD, CMD_KBD_ENABLE = 0xAE, CMD_WRITE_OUTPUT = 0xD1, CMD_WRITE_AUX = 0xD4,
            CMD_RESET = 0xFE;

    private final Runnable onReset;
    private int ctr = 0x45; // translate, system flag, keyboard interrupt, as after a BIOS
    private int output = -1; // byte waiting in the output buffer, or -1
    private int pendingCommand = -1; // a command waiting for its data byte
    private int lastWasCommand;

    /** @param onReset called when the guest resets the machine through the controller */
    public I8042(Runnable onReset) {
        this.onReset = onReset;
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset == STATUS_COMMAND) {
            return (output >= 0 ? STATUS_OBF : 0) | STATUS_SYS | lastWasCommand;
        }
        if (offset == DATA) {
            int v = output < 0 ? 0 : output;
            output = -1;
            return v;
        }
        return 0xFF;
    }

    @Override
    public synchronized void write(long offset, int size, long v) {
        int value = (int) (v & 0xFF);
        if (offset == STATUS_COMMAND) {
            lastWasCommand = STATUS_CMD;
            command(value);
        } else if (offset == DATA) {
            lastWasCommand = 0;
            int command = pendingCommand;
            pendingCommand = -1;
            if (command == CMD_WRITE_CTR) {
                ctr = value;
            } else if (command == CMD_WRITE_OUTPUT && (value & 1) == 0) {
                onReset.run();
            }
            // CMD_WRITE_AUX and keyboard bytes: nothing attached, no answer.
        }
    }

    /** Register names for {@code --trace}: "data", "status", or "command" with the command's meaning. */
    @Override
    public synchronized String describe(long offset, int size, boolean write, long value) {
        return registerName((int) offset, write, (int) value, pendingCommand);
    }

    /**
     * @param offset         0 (port 0x60) or 4 (port 0x64)
     * @param write          true for a write
     * @param value          the byte read or written
     * @param pendingCommand the command waiting for a data byte, or -1
     * @return e.g. "status", "command 0xfe (pulse reset)", "data (CTR for command 0x60)"; null for other offsets
     */
    public static String registerName(int offset, boolean write, int value, int pendingCommand) {
        if (offset == STATUS_COMMAND) {
            if (!write) {
                return "status";
            }
            String what = commandName(value);
            return "command 0x" + Integer.toHexString(value) + (what == null ? "" : " (" + what + ")");
        }
        if (offset == DATA) {
            if (write && pendingCommand >= 0) {
                return "data (for command 0x" + Integer.toHexString(pendingCommand) + ")";
            }
            return "data";
        }
        return null;
    }

    /** @return what an 8042 command does, in a few words, or null for one this model does not know */
    static String commandName(int command) {
        return switch (command) {
            case CMD_READ_CTR -> "read CTR";
            case CMD_WRITE_CTR -> "write CTR";
            case CMD_AUX_DISABLE -> "disable aux";
            case CMD_AUX_ENABLE -> "enable aux";
            case CMD_AUX_TEST -> "test aux";
            case CMD_SELF_TEST -> "self test";
            case CMD_KBD_TEST -> "test keyboard";
            case CMD_KBD_DISABLE -> "disable keyboard";
            case CMD_KBD_ENABLE -> "enable keyboard";
            case CMD_WRITE_OUTPUT -> "write output port";
            case CMD_WRITE_AUX -> "write to aux";
            case CMD_RESET -> "pulse reset";
            default -> null;
        };
    }

    private void command(int command) {
        switch (command) {
            case CMD_READ_CTR -> output = ctr;
            case CMD_WRITE_CTR, CMD_WRITE_OUTPUT, CMD_WRITE_AUX -> pendingCommand = command;
            case CMD_SELF_TEST -> output = 0x55;
            case CMD_KBD_TEST -> output = 0x00;
            case CMD_AUX_TEST -> output = 0xFF;
            case CMD_AUX_DISABLE -> ctr |= 0x20;
            case CMD_AUX_ENABLE -> ctr &= ~0x20;
            case CMD_KBD_DISABLE -> ctr |= 0x10;
            case CMD_KBD_ENABLE -> ctr &= ~0x10;
            case CMD_RESET -> onReset.run();
            default -> { } // other commands: ignored
        }
    }
}
