package dev.panamax.devices;

import dev.panamax.core.bus.Bus;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The legacy devices driven through a port I/O bus, as the guest's drivers drive them. */
class DevicesTest {
    private final Bus pio = new Bus("pio");
    private final List<Boolean> irq = new ArrayList<>();
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final Serial16550 uart = new Serial16550(irq::add, out::write);

    DevicesTest() {
        pio.register(Serial16550.COM1_PORT, Serial16550.PORT_COUNT, "com1", uart);
    }

    private int in(int port) {
        return (int) pio.read(port, 1);
    }

    private void out(int port, int value) {
        pio.write(port, 1, value);
    }

    @Test
    void uartPassesLinuxAutoconfigAsA16550A() {
        // Scratch register.
        out(0x3ff, 0xa5);
        assertEquals(0xa5, in(0x3ff));
        // Loopback test of serial8250's autoconfig(): MCR = LOOP | 0x0A must read MSR & 0xF0 == 0x90.
        out(0x3fc, 0x10);
        assertEquals(0, in(0x3fe) & 0xf0);
        out(0x3fc, 0x1a);
        assertEquals(0x90, in(0x3fe) & 0xf0);
        out(0x3fc, 0x00);
        // FIFO enabled: IIR bits 7:6 both set means a 16550A.
        out(0x3fa, 0xe7);
        assertEquals(0xc0, in(0x3fa) & 0xc0);
        // Divisor latch is separate from THR/IER.
        out(0x3fb, 0x80);
        out(0x3f8, 0x01);
        out(0x3f9, 0x00);
        assertEquals(0x01, in(0x3f8));
        out(0x3fb, 0x03);
        assertEquals(0, out.size());
    }

    @Test
    void transmitRaisesAndAcknowledgesTheThreInterrupt() {
        assertEquals(0x60, in(0x3fd) & 0x60); // THRE and TEMT
        assertEquals(1, in(0x3fa) & 0x0f);    // no interrupt pending
        out(0x3f9, 0x02);                      // enable THRI: THR is empty, so it fires at once
        assertEquals(List.of(true), irq);
        assertEquals(0x02, in(0x3fa) & 0x0f);  // reading IIR acknowledges it
        assertEquals(List.of(true, false), irq);
        out(0x3f8, 'h');
        out(0x3f8, 'i');
        assertEquals("hi", out.toString());
        assertEquals(List.of(true, false, true, false, true), irq); // an edge per byte
    }

    /** offer takes what the 4 KiB backlog has room for, drops nothing, and takes more once the guest has read. */
    @Test
    void offerTakesWhatTheBacklogHasRoomFor() {
        out(0x3f9, 0x01);
        byte[] data = new byte[Serial16550.RX_LIMIT + 100];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) i;
        }
        assertEquals(Serial16550.RX_LIMIT - 10, uart.offer(data, 0, Serial16550.RX_LIMIT - 10));
        assertEquals(10, uart.offer(data, Serial16550.RX_LIMIT - 10, 110));
        assertEquals(0, uart.offer(data, Serial16550.RX_LIMIT, 100));
        assertEquals(List.of(true), irq);
        assertEquals(0x04, in(0x3fa) & 0x0f); // the driver's receive interrupt opens the receiver
        for (int i = 0; i < 3; i++) {
            assertEquals(i, in(0x3f8));
        }
        assertEquals(3, uart.offer(data, Serial16550.RX_LIMIT, 100));
        for (int i = 3; i < Serial16550.RX_LIMIT + 3; i++) {
            assertEquals(i & 0xFF, in(0x3f8), "byte " + i);
        }
        assertEquals(0, in(0x3fd) & 1);
        assertEquals(0, uart.offer(data, 0, 0));
    }

    @Test
    void receivedBytesAreReadInOrderWithAnInterrupt() {
        out(0x3f9, 0x01); // RX data interrupt
        assertTrue(irq.isEmpty());
        uart.receive("ls\n".getBytes(), 3);
        assertEquals(List.of(true), irq);
        assertEquals(0x04, in(0x3fa) & 0x0f);
        assertEquals(1, in(0x3fd) & 1);
        assertEquals('l', in(0x3f8));
        assertEquals('s', in(0x3f8));
        assertEquals('\n', in(0x3f8));
        assertEquals(0, in(0x3fd) & 1);
        assertEquals(List.of(true, false), irq);
    }

    @Test
    void bytesTypedBeforeTheDriverListensWaitForIt() {
        uart.receive("echo".getBytes(), 4);
        assertEquals(0, in(0x3fd) & 1);  // the driver probing: no data yet
        assertEquals(0, in(0x3f8));      // and its RBR reads eat nothing
        out(0x3fa, 0x07);                // FIFO reset
        assertTrue(irq.isEmpty());
        out(0x3f9, 0x01);                // start-up: receive interrupt on, the line rises
        assertEquals(List.of(true), irq);
        assertEquals(0, in(0x3fd) & 1);  // "clear the interrupt registers for luck": LSR, RX...
        assertEquals(0, in(0x3f8));
        assertEquals(0x04, in(0x3fa) & 0x0f); // ...IIR says "data": from now on the driver sees it
        assertEquals(1, in(0x3fd) & 1);
        assertEquals('e', in(0x3f8));
        assertEquals('c', in(0x3f8));
    }

    @Test
    void loopbackSendsToTheReceiverNotTheHost() {
        out(0x3fc, 0x10);
        out(0x3f8, 0x42);
        assertEquals(0x42, in(0x3f8));
        assertEquals(0, out.size());
    }

    @Test
    void i8042AnswersTheDriverAndResets() {
        List<String> resets = new ArrayList<>();
        pio.register(I8042.BASE_PORT, I8042.PORT_COUNT, "i8042", new I8042(level -> { }, level -> { }, () -> resets.add("reset")));
        assertEquals(0, in(0x64) & 1);       // output buffer empty
        assertEquals(0x10, in(0x64) & 0x10); // not inhibited: Linux warns "Keylock active" otherwise
        out(0x64, 0x20);                     // read CTR
        assertEquals(1, in(0x64) & 1);
        assertEquals(0x45, in(0x60));
        out(0x64, 0x60);                     // write CTR
        out(0x60, 0x47);
        out(0x64, 0x20);
        assertEquals(0x47, in(0x60));
        out(0x64, 0xaa);                     // self test
        assertEquals(0x55, in(0x60));
        assertTrue(resets.isEmpty());
        out(0x64, 0xfe);
        assertEquals(List.of("reset"), resets);
    }

    /**
     * Linux's probe: three aux loopback bytes echoed (so not a multiplexing controller: the third comes back
     * unchanged), then one with the aux interrupt enabled, which must raise IRQ 12 until the byte is read.
     */
    @Test
    void i8042LoopsBackAuxBytesAndRaisesTheirIrq() {
        List<Boolean> kbdIrq = new ArrayList<>();
        List<Boolean> auxIrq = new ArrayList<>();
        pio.register(I8042.BASE_PORT, I8042.PORT_COUNT, "i8042", new I8042(kbdIrq::add, auxIrq::add, () -> { }));
        out(0x64, 0x60);                     // CTR: no interrupts
        out(0x60, 0x44);
        for (int b : new int[] {0xf0, 0x56, 0xa4}) {
            out(0x64, 0xd3);                 // write aux output buffer
            out(0x60, b);
            assertEquals(0x21, in(0x64) & 0x21, "OBF and AUXDATA after the loopback of 0x" + Integer.toHexString(b));
            assertEquals(b, in(0x60));
            assertEquals(0, in(0x64) & 0x21);
        }
        assertTrue(kbdIrq.isEmpty() && auxIrq.isEmpty(), "no interrupt while the CTR disables them");
        out(0x64, 0x60);                     // CTR: keyboard and aux interrupts on
        out(0x60, 0x47);
        out(0x64, 0xd3);
        out(0x60, 0xa5);
        assertEquals(List.of(true), auxIrq);
        assertEquals(0xa5, in(0x60));
        assertEquals(List.of(true, false), auxIrq, "IRQ 12 drops when the byte is read");
        out(0x64, 0x20);                     // a controller answer goes out on the keyboard's IRQ 1
        assertEquals(List.of(true), kbdIrq);
        assertEquals(0, in(0x64) & 0x20, "the CTR is not aux data");
        assertEquals(0x47, in(0x60));
        assertEquals(List.of(true, false), kbdIrq);
        out(0x64, 0xd2);                     // keyboard loopback
        out(0x60, 0x5a);
        assertEquals(0x01, in(0x64) & 0x21);
        assertEquals(0x5a, in(0x60));
        assertEquals(List.of(true, false, true, false), kbdIrq);
        out(0x60, 0xf2);                     // a byte for the keyboard: nothing attached, no answer
        assertEquals(0, in(0x64) & 1);
    }

    @Test
    void exitPortHandsOverTheByte() {
        List<Integer> statuses = new ArrayList<>();
        pio.register(ExitPort.PORT, 1, "exit", new ExitPort(statuses::add));
        out(0xf4, 3);
        pio.write(0xf4, 4, 0x1ff);
        assertEquals(List.of(3, 0xff), statuses);
    }

    @Test
    void rtcReadsTheClockInBcd() {
        Clock clock = Clock.fixed(Instant.parse("2026-11-26T07:42:59Z"), ZoneOffset.UTC);
        pio.register(CmosRtc.BASE_PORT, CmosRtc.PORT_COUNT, "rtc", new CmosRtc(clock));
        int[][] expected = {{0x00, 0x59}, {0x02, 0x42}, {0x04, 0x07}, {0x07, 0x26}, {0x08, 0x11},
                {0x09, 0x26}, {0x32, 0x20}, {0x06, 0x05}}; // Thursday = 5 (Sunday = 1)
        for (int[] e : expected) {
            out(0x70, e[0]);
            assertEquals(e[1], in(0x71), "register 0x" + Integer.toHexString(e[0]));
        }
        out(0x70, 0x0a);
        assertFalse((in(0x71) & 0x80) != 0, "update in progress must stay clear");
        out(0x70, 0x40);
        out(0x71, 0x99);
        assertEquals(0x99, in(0x71));
    }
}
