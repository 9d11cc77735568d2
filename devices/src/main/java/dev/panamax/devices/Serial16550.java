package dev.panamax.devices;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;

import java.util.ArrayDeque;
import java.util.function.IntConsumer;

/**
 * A 16550A UART (the PC's COM1 at I/O port 0x3F8, ISA IRQ 4), interrupt driven.
 *
 * <p>Registers (offset from the base port; DLAB is LCR bit 7), after the National Semiconductor
 * PC16550D datasheet:
 * <pre>
 * 0  RBR (read) / THR (write)      DLAB=1: DLL, divisor latch low
 * 1  IER interrupt enable          DLAB=1: DLM, divisor latch high
 * 2  IIR interrupt ident (read) / FCR FIFO control (write)
 * 3  LCR line control    4  MCR modem control    5  LSR line status
 * 6  MSR modem status    7  SCR scratch
 * </pre>
 * Transmission is instant: a byte written to THR goes straight to the host's output, and the
 * transmitter is always empty again (LSR THRE and TEMT set). Received bytes wait in a host-side
 * queue, delivered through RBR. The interrupt line is high while an enabled condition is pending:
 * received data (IER bit 0) or an empty transmitter (IER bit 1), the latter cleared by reading IIR
 * or writing THR, as Linux's 8250 driver expects. Bytes typed before the guest's driver starts wait
 * in the backlog, unseen in LSR and RBR, until the driver first takes a receive interrupt (reads IIR
 * while it reports received data): Linux's probing and start-up reads ("clear the interrupt
 * registers for luck") and FIFO resets do not eat them, so input piped to {@code panamax run}
 * reaches the guest's shell whole.
 *
 * <p>Snapshot ({@link Snapshottable}, tag {@value #STATE_TAG}, version {@value #STATE_VERSION}; little-endian):
 * <pre>
 *   u8 IER (0..0x0F)  u8 LCR  u8 MCR (0..0x1F)  u8 SCR  u8 FCR  u8 DLL  u8 DLM
 *   u8 thr_interrupt  u8 receiver_opened  u8 irq_level   (0 or 1 each; irq_level must be what the registers imply)
 *   bytes rx: le32 length (at most 4096) + the received bytes not yet read, oldest first
 * </pre>
 * Restoring does not drive the interrupt line: the interrupt controller's state is restored on its own
 * ({@code KVM_SET_IRQCHIP}); the model remembers the level so that its next transition is right.
 */
public final class Serial16550 implements BusDevice, Snapshottable {
    /** COM1's base port. */
    public static final int COM1_PORT = 0x3F8;
    /** COM1's ISA IRQ. */
    public static final int COM1_IRQ = 4;
    /** Number of ports the UART decodes. */
    public static final int PORT_COUNT = 8;

    private static final int RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
    private static final int IER_RDI = 0x01, IER_THRI = 0x02;
    private static final int IIR_NO_INT = 0x01, IIR_THRI = 0x02, IIR_RDI = 0x04, IIR_FIFO_ENABLED = 0xC0;
    private static final int LCR_DLAB = 0x80;
    private static final int LSR_DR = 0x01, LSR_THRE = 0x20, LSR_TEMT = 0x40;
    private static final int MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
    private static final int MSR_CTS = 0x10, MSR_DSR = 0x20, MSR_RI = 0x40, MSR_DCD = 0x80;
    /** Bytes the host may queue for the guest before input is dropped. */
    public static final int RX_LIMIT = 4096;
    /** The snapshot format's tag and version. */
    public static final String STATE_TAG = "UART";
    public static final int STATE_VERSION = 1;

    private final IrqLine irq;
    private final IntConsumer output;
    private final ArrayDeque<Integer> rx = new ArrayDeque<>();
    private int ier, lcr, mcr, scr, fcr;
    private int dll = 0x0C, dlm; // 9600 baud, as after a BIOS
    private boolean thrInterrupt;
    /**
     * Set once the guest's driver has taken a receive interrupt (read IIR while it said "data"): until
     * then the host's bytes wait unseen, so the probing and start-up reads of a driver do not eat them.
     */
    private boolean receiverOpened;
    private boolean irqLevel;

    /**
     * @param irq    the line the UART raises (ISA IRQ 4 for COM1)
     * @param output receives each byte the guest transmits (0..255)
     */
    public Serial16550(IrqLine irq, IntConsumer output) {
        this.irq = irq;
        this.output = output;
    }

    /**
     * Queues bytes typed on the host for the guest to receive. Called from the console's input
     * thread; bytes past a 4 KiB backlog are dropped, as a UART overruns.
     */
    public synchronized void receive(byte[] data, int length) {
        for (int i = 0; i < length && rx.size() < RX_LIMIT; i++) {
            rx.add(data[i] & 0xFF);
        }
        updateIrq();
    }

    /**
     * Queues as many bytes of {@code data[offset, offset + length)} as the host-side backlog ({@value #RX_LIMIT}
     * bytes) has room for, none dropped: the caller sends the rest later (backpressure, as {@code panamax test
     * --snapshot} feeds its script). Called from any host thread.
     *
     * @return the number of bytes taken, 0 when the backlog is full
     */
    public synchronized int offer(byte[] data, int offset, int length) {
        java.util.Objects.checkFromIndexSize(offset, length, data.length);
        int n = Math.min(length, RX_LIMIT - rx.size());
        for (int i = 0; i < n; i++) {
            rx.add(data[offset + i] & 0xFF);
        }
        if (n > 0) {
            updateIrq();
        }
        return n;
    }

    @Override
    public synchronized long read(long offset, int size) {
        int value;
        switch ((int) offset) {
            case RBR_THR -> {
                if ((lcr & LCR_DLAB) != 0) {
                    value = dll;
                } else {
                    Integer b = dataReady() ? rx.poll() : null;
                    value = b == null ? 0 : b;
                    updateIrq();
                }
            }
            case IER -> value = (lcr & LCR_DLAB) != 0 ? dlm : ier;
            case IIR_FCR -> {
                value = interruptIdentification() | ((fcr & 1) != 0 ? IIR_FIFO_ENABLED : 0);
                if ((value & 0x0F) == IIR_RDI) {
                    receiverOpened = true; // the driver handles receive interrupts: show it the data
                }
                if ((value & 0x0F) == IIR_THRI) {
                    thrInterrupt = false; // reading IIR acknowledges "transmitter empty"
                    updateIrq();
                }
            }
            case LCR -> value = lcr;
            case MCR -> value = mcr;
            case LSR -> value = LSR_THRE | LSR_TEMT | (dataReady() ? LSR_DR : 0);
            case MSR -> value = modemStatus();
            case SCR -> value = scr;
            default -> value = 0xFF;
        }
        return value;
    }

    @Override
    public synchronized void write(long offset, int size, long v) {
        int value = (int) (v & 0xFF);
        switch ((int) offset) {
            case RBR_THR -> {
                if ((lcr & LCR_DLAB) != 0) {
                    dll = value;
                } else {
                    thrInterrupt = false;
                    updateIrq();
                    if ((mcr & MCR_LOOP) != 0) {
                        if (rx.size() < RX_LIMIT) {
                            rx.add(value); // loopback: what is sent is received
                        }
                    } else {
                        output.accept(value);
                    }
                    thrInterrupt = true; // sent at once: THR is empty again
                    updateIrq();
                }
            }
            case IER -> {
                if ((lcr & LCR_DLAB) != 0) {
                    dlm = value;
                } else {
                    boolean thriNewlyEnabled = (value & IER_THRI) != 0 && (ier & IER_THRI) == 0;
                    ier = value & 0x0F;
                    if (thriNewlyEnabled) {
                        thrInterrupt = true; // THR is empty, so enabling THRI raises it at once
                    }
                    updateIrq();
                }
            }
            case IIR_FCR -> fcr = value; // "clear receive FIFO" keeps the host's backlog: typed bytes are never lost
            case LCR -> lcr = value;
            case MCR -> mcr = value & 0x1F;
            case SCR -> scr = value;
            default -> { } // LSR and MSR are read-only
        }
    }

    @Override
    public synchronized byte[] saveState() {
        byte[] queued = new byte[rx.size()];
        int i = 0;
        for (int b : rx) {
            queued[i++] = (byte) b;
        }
        return new StateWriter(STATE_TAG, STATE_VERSION).u8(ier).u8(lcr).u8(mcr).u8(scr).u8(fcr).u8(dll).u8(dlm)
                .bool(thrInterrupt).bool(receiverOpened).bool(irqLevel).bytes(queued).toByteArray();
    }

    /** @throws dev.panamax.core.state.StateException as {@link Snapshottable#restoreState} says; the UART unchanged */
    @Override
    public synchronized void restoreState(byte[] state) {
        var r = new StateReader("com1", state, STATE_TAG, STATE_VERSION);
        int newIer = (int) r.check("IER", r.u8(), 0, 0x0F);
        int newLcr = r.u8();
        int newMcr = (int) r.check("MCR", r.u8(), 0, 0x1F);
        int newScr = r.u8();
        int newFcr = r.u8();
        int newDll = r.u8();
        int newDlm = r.u8();
        boolean newThr = r.bool("thr_interrupt");
        boolean newOpened = r.bool("receiver_opened");
        boolean newLevel = r.bool("irq_level");
        byte[] queued = r.bytes("rx queue", RX_LIMIT);
        r.end();
        boolean pending = ((newIer & IER_RDI) != 0 && queued.length > 0) || ((newIer & IER_THRI) != 0 && newThr);
        if (pending != newLevel) {
            throw r.invalid("irq_level " + (newLevel ? 1 : 0) + " is not what IER, THR and the rx queue imply");
        }
        ier = newIer;
        lcr = newLcr;
        mcr = newMcr;
        scr = newScr;
        fcr = newFcr;
        dll = newDll;
        dlm = newDlm;
        thrInterrupt = newThr;
        receiverOpened = newOpened;
        irqLevel = newLevel;
        rx.clear();
        for (byte b : queued) {
            rx.add(b & 0xFF);
        }
    }

    /** Register names for {@code --trace}: the datasheet's, as the access sees DLAB (LCR bit 7). */
    @Override
    public synchronized String describe(long offset, int size, boolean write, long value) {
        return registerName((int) offset, write, (lcr & LCR_DLAB) != 0);
    }

    /**
     * @param offset 0..7 from the base port
     * @param write  true for a write (offsets 0 and 2 are two registers each)
     * @param dlab   LCR bit 7: offsets 0 and 1 are the divisor latch
     * @return the PC16550D's name of the register, e.g. "THR", "IIR", "DLL"; null past offset 7
     */
    public static String registerName(int offset, boolean write, boolean dlab) {
        return switch (offset) {
            case RBR_THR -> dlab ? "DLL" : write ? "THR" : "RBR";
            case IER -> dlab ? "DLM" : "IER";
            case IIR_FCR -> write ? "FCR" : "IIR";
            case LCR -> "LCR";
            case MCR -> "MCR";
            case LSR -> "LSR";
            case MSR -> "MSR";
            case SCR -> "SCR";
            default -> null;
        };
    }

    /** IIR bits 3:0 for the highest-priority pending interrupt (RX data above THR empty). */
    private int interruptIdentification() {
        if ((ier & IER_RDI) != 0 && !rx.isEmpty()) {
            return IIR_RDI;
        }
        if ((ier & IER_THRI) != 0 && thrInterrupt) {
            return IIR_THRI;
        }
        return IIR_NO_INT;
    }

    /** LSR DR: a byte is there for the guest (the loopback's own bytes always are). */
    private boolean dataReady() {
        return !rx.isEmpty() && (receiverOpened || (mcr & MCR_LOOP) != 0);
    }

    /** MSR: in loopback the outputs feed the inputs (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD); else a connected line. */
    private int modemStatus() {
        if ((mcr & MCR_LOOP) != 0) {
            return ((mcr & MCR_RTS) != 0 ? MSR_CTS : 0) | ((mcr & MCR_DTR) != 0 ? MSR_DSR : 0)
                    | ((mcr & MCR_OUT1) != 0 ? MSR_RI : 0) | ((mcr & MCR_OUT2) != 0 ? MSR_DCD : 0);
        }
        return MSR_DCD | MSR_DSR | MSR_CTS;
    }

    private void updateIrq() {
        boolean level = interruptIdentification() != IIR_NO_INT;
        if (level != irqLevel) {
            irqLevel = level;
            irq.set(level);
        }
    }
}
