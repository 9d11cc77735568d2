package dev.panamax.devices;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;

/**
 * The PS/2 controller (Intel 8042) at ports 0x60 (data) and 0x64 (status and command), with no keyboard
 * and no mouse attached: enough that Linux's i8042 driver finds a controller quickly, and the command that
 * resets the machine. Linux's {@code reboot -f} (with {@code reboot=k}) ends here: command 0xFE pulses the CPU
 * reset line.
 *
 * <p>Commands (written to 0x64): 0x20 read the controller configuration byte (CTR), 0x60 write it
 * (next data byte), 0xAA self test (answers 0x55), 0xAB / 0xA9 interface tests (0x00: no error),
 * 0xA7/0xA8/0xAD/0xAE disable/enable ports, 0xD1 write output port (bit 0 clear resets), 0xD2 / 0xD3 put
 * the next data byte in the output buffer as if the keyboard / the aux port had sent it ("loopback"),
 * 0xD4 write to the aux device (swallowed: no mouse), 0xFE reset. Bytes written to 0x60 for the keyboard
 * get no answer: no keyboard is attached.
 *
 * <p>Interrupts: a byte in the output buffer raises IRQ 1 (from the keyboard or the controller) or IRQ 12
 * (from the aux port) while the CTR enables that interrupt (bits 0 and 1), and the line drops when the guest
 * reads the byte, as the 8042's OBF output does. Linux's probe relies on both: it tells a multiplexing
 * controller from a plain one by three aux loopback bytes, and it checks that IRQ 12 is delivered by one more.
 * Without them each unanswered loopback costs the probe its full timeout (0.5 s, then 0.25 s for the IRQ
 * test: 1.6 s of a boot measured nested). The status register reads "not inhibited" (bit 4), as QEMU's does,
 * so Linux does not warn that a key lock is active.
 *
 * <p>Registered over 0x60..0x64; the speaker port 0x61 is KVM's in-kernel PIT's, which claims it first.
 *
 * <p>Snapshot ({@link Snapshottable}, tag {@value #STATE_TAG}, version {@value #STATE_VERSION}):
 * <pre>
 *   u8 CTR   u8 output_full (0/1)   u8 output (the byte waiting; 0 when not full)   u8 output_from_aux (0/1)
 *   u8 pending_command (0 for none, else 0x60, 0xD1, 0xD2, 0xD3 or 0xD4)   u8 last_was_command (0/1: status bit 3)
 *   u8 kbd_level   u8 aux_level   (0/1: IRQ 1 and IRQ 12 as last driven; each must be what the rest implies)
 * </pre>
 * Restoring drives neither line (the interrupt controller's state is restored on its own, {@code KVM_SET_IRQCHIP}).
 */
public final class I8042 implements BusDevice, Snapshottable {
    /** First port decoded: 0x60. */
    public static final int BASE_PORT = 0x60;
    /** Ports decoded: 0x60..0x64. */
    public static final int PORT_COUNT = 5;
    /** ISA IRQ of the keyboard port. */
    public static final int KBD_IRQ = 1;
    /** ISA IRQ of the aux (mouse) port. */
    public static final int AUX_IRQ = 12;

    /** The snapshot format's tag and version. */
    public static final String STATE_TAG = "8042";
    public static final int STATE_VERSION = 1;

    private static final int DATA = 0, STATUS_COMMAND = 4;
    /** Status register bits. */
    private static final int STATUS_OBF = 0x01, STATUS_SYS = 0x04, STATUS_CMD = 0x08, STATUS_UNLOCKED = 0x10,
            STATUS_AUXDATA = 0x20;
    /** Controller configuration byte bits. */
    private static final int CTR_KBDINT = 0x01, CTR_AUXINT = 0x02, CTR_KBDDIS = 0x10, CTR_AUXDIS = 0x20;
    private static final int CMD_READ_CTR = 0x20, CMD_WRITE_CTR = 0x60, CMD_AUX_DISABLE = 0xA7,
            CMD_AUX_ENABLE = 0xA8, CMD_AUX_TEST = 0xA9, CMD_SELF_TEST = 0xAA, CMD_KBD_TEST = 0xAB,
            CMD_KBD_DISABLE = 0xAD, CMD_KBD_ENABLE = 0xAE, CMD_WRITE_OUTPUT = 0xD1, CMD_KBD_LOOP = 0xD2,
            CMD_AUX_LOOP = 0xD3, CMD_WRITE_AUX = 0xD4, CMD_RESET = 0xFE;

    private final IrqLine kbdIrq;
    private final IrqLine auxIrq;
    private final Runnable onReset;
    private int ctr = 0x45; // translate, system flag, keyboard interrupt, as after a BIOS
    private int output = -1; // byte waiting in the output buffer, or -1
    private boolean outputFromAux; // whether that byte came from the aux port
    private int pendingCommand = -1; // a command waiting for its data byte
    private int lastWasCommand;
    private boolean kbdLevel;
    private boolean auxLevel;

    /**
     * @param kbdIrq  ISA IRQ 1
     * @param auxIrq  ISA IRQ 12
     * @param onReset called when the guest resets the machine through the controller
     */
    public I8042(IrqLine kbdIrq, IrqLine auxIrq, Runnable onReset) {
        this.kbdIrq = kbdIrq;
        this.auxIrq = auxIrq;
        this.onReset = onReset;
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset == STATUS_COMMAND) {
            int obf = output >= 0 ? STATUS_OBF | (outputFromAux ? STATUS_AUXDATA : 0) : 0;
            return obf | STATUS_UNLOCKED | STATUS_SYS | lastWasCommand;
        }
        if (offset == DATA) {
            int v = output < 0 ? 0 : output;
            output = -1;
            updateIrqs();
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
            switch (command) {
                case CMD_WRITE_CTR -> {
                    ctr = value;
                    updateIrqs();
                }
                case CMD_WRITE_OUTPUT -> {
                    if ((value & 1) == 0) {
                        onReset.run();
                    }
                }
                case CMD_KBD_LOOP -> answer(value, false);
                case CMD_AUX_LOOP -> answer(value, true);
                default -> { } // CMD_WRITE_AUX and keyboard bytes: nothing attached, no answer.
            }
        }
    }

    @Override
    public synchronized byte[] saveState() {
        return new StateWriter(STATE_TAG, STATE_VERSION).u8(ctr).bool(output >= 0).u8(Math.max(output, 0))
                .bool(outputFromAux).u8(Math.max(pendingCommand, 0)).bool(lastWasCommand != 0)
                .bool(kbdLevel).bool(auxLevel).toByteArray();
    }

    /** @throws dev.panamax.core.state.StateException as {@link Snapshottable#restoreState} says; the controller unchanged */
    @Override
    public synchronized void restoreState(byte[] state) {
        var r = new StateReader("i8042", state, STATE_TAG, STATE_VERSION);
        int newCtr = r.u8();
        boolean full = r.bool("output_full");
        int newOutput = r.u8();
        boolean fromAux = r.bool("output_from_aux");
        int pending = r.u8();
        boolean wasCommand = r.bool("last_was_command");
        boolean kbd = r.bool("kbd_level");
        boolean aux = r.bool("aux_level");
        r.end();
        if (!full && newOutput != 0) {
            throw r.invalid("output is 0x" + Integer.toHexString(newOutput) + " with the output buffer empty");
        }
        if (pending != 0 && pending != CMD_WRITE_CTR && pending != CMD_WRITE_OUTPUT && pending != CMD_KBD_LOOP
                && pending != CMD_AUX_LOOP && pending != CMD_WRITE_AUX) {
            throw r.invalid("pending_command 0x" + Integer.toHexString(pending) + " is not one that waits for data");
        }
        if (kbd != (full && !fromAux && (newCtr & CTR_KBDINT) != 0) || aux != (full && fromAux && (newCtr & CTR_AUXINT) != 0)) {
            throw r.invalid("kbd_level/aux_level are not what the output buffer and CTR imply");
        }
        ctr = newCtr;
        output = full ? newOutput : -1;
        outputFromAux = fromAux;
        pendingCommand = pending == 0 ? -1 : pending;
        lastWasCommand = wasCommand ? STATUS_CMD : 0;
        kbdLevel = kbd;
        auxLevel = aux;
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
            case CMD_KBD_LOOP -> "loop back as keyboard";
            case CMD_AUX_LOOP -> "loop back as aux";
            case CMD_WRITE_AUX -> "write to aux";
            case CMD_RESET -> "pulse reset";
            default -> null;
        };
    }

    private void command(int command) {
        switch (command) {
            case CMD_READ_CTR -> answer(ctr, false);
            case CMD_WRITE_CTR, CMD_WRITE_OUTPUT, CMD_KBD_LOOP, CMD_AUX_LOOP, CMD_WRITE_AUX -> pendingCommand = command;
            case CMD_SELF_TEST -> answer(0x55, false);
            case CMD_KBD_TEST, CMD_AUX_TEST -> answer(0x00, false);
            case CMD_AUX_DISABLE -> ctr |= CTR_AUXDIS;
            case CMD_AUX_ENABLE -> ctr &= ~CTR_AUXDIS;
            case CMD_KBD_DISABLE -> ctr |= CTR_KBDDIS;
            case CMD_KBD_ENABLE -> ctr &= ~CTR_KBDDIS;
            case CMD_RESET -> onReset.run();
            default -> { } // other commands: ignored
        }
    }

    /** Puts {@code value} in the output buffer, from the aux port or from the keyboard/controller. */
    private void answer(int value, boolean fromAux) {
        output = value;
        outputFromAux = fromAux;
        updateIrqs();
    }

    /** IRQ 1 / IRQ 12 follow "a byte from that port waits and the CTR enables its interrupt". */
    private void updateIrqs() {
        boolean kbd = output >= 0 && !outputFromAux && (ctr & CTR_KBDINT) != 0;
        boolean aux = output >= 0 && outputFromAux && (ctr & CTR_AUXINT) != 0;
        if (kbd != kbdLevel) {
            kbdLevel = kbd;
            kbdIrq.set(kbd);
        }
        if (aux != auxLevel) {
            auxLevel = aux;
            auxIrq.set(aux);
        }
    }
}
