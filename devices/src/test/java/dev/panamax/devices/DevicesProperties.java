package dev.panamax.devices;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Property-based tests (issue 15) of the legacy devices a guest reaches by port I/O: random reads and writes of
 * any width (1, 2, 4) at any of their ports, then a check that each still works as a driver expects. Tries:
 * {@code jqwik.tries.default} (junit-platform.properties).
 */
class DevicesProperties {
    /** One port access: offset from the device's base port, width, direction, value. */
    record Access(int offset, int size, boolean write, long value) {
    }

    private static Arbitrary<List<Access>> accesses(int ports) {
        Arbitrary<Long> value = Arbitraries.oneOf(Arbitraries.longs().between(0, 0xFFFF_FFFFL),
                Arbitraries.longs().between(0, 0xFF), Arbitraries.of(0x01L, 0x20L, 0x3400L, 0x2000L, 0xFEL, 0xAAL, 0x80L));
        return Combinators.combine(Arbitraries.integers().between(0, ports - 1), Arbitraries.of(1, 2, 4),
                        Arbitraries.of(true, false), value)
                .as(Access::new).list().ofMaxSize(80);
    }

    @Provide
    Arbitrary<List<Access>> uart() {
        return accesses(Serial16550.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> cmos() {
        return accesses(CmosRtc.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> i8042() {
        return accesses(I8042.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> acpi() {
        return accesses(AcpiPm.PORT_COUNT);
    }

    private static void run(dev.panamax.core.bus.BusDevice d, List<Access> accesses) {
        for (Access a : accesses) {
            if (a.write()) {
                d.write(a.offset(), a.size(), a.value());
            } else {
                d.read(a.offset(), a.size());
            }
        }
    }

    @Property
    void uartStillTransmitsAndReceives(@ForAll("uart") List<Access> accesses) {
        List<Integer> sent = new ArrayList<>();
        boolean[] irq = new boolean[1];
        var uart = new Serial16550(level -> irq[0] = level, sent::add);
        run(uart, accesses);
        // A driver's reinitialisation (Linux 8250 serial8250_do_set_termios / startup): 8N1, no loopback, no interrupts.
        uart.write(3, 1, 0x03);
        uart.write(4, 1, 0x00);
        uart.write(1, 1, 0x00);
        assertFalse(irq[0], "IRQ still raised with IER 0");
        while ((uart.read(5, 1) & 0x01) != 0) {
            uart.read(0, 1); // drain what loopback left
        }
        sent.clear();
        uart.write(0, 1, 'A');
        assertEquals(List.of((int) 'A'), sent, "THR reaches the host");
        assertEquals(0x60, uart.read(5, 1) & 0x60, "LSR: THRE and TEMT after a send");
        assertEquals(0x03, uart.read(3, 1));
    }

    @Property
    void cmosIndexStaysInItsRegisters(@ForAll("cmos") List<Access> accesses) {
        var rtc = new CmosRtc(Clock.fixed(Instant.parse("2026-01-02T03:04:05Z"), ZoneOffset.UTC));
        run(rtc, accesses);
        // Whatever was written, index writes keep bits 6..0 (bit 7 is the NMI mask) and RAM keeps its bytes.
        rtc.write(0, 1, 0x80 | 0x40);
        rtc.write(1, 1, 0x5A);
        rtc.write(0, 1, 0x40);
        assertEquals(0x5A, rtc.read(1, 1), "CMOS RAM 0x40 through an index with NMI off and on");
        rtc.write(0, 1, 0x7F);
        rtc.write(1, 1, 0xA5);
        rtc.write(0, 1, 0xFF);
        assertEquals(0xA5, rtc.read(1, 1), "index 0xFF selects register 0x7F");
        rtc.write(0, 1, 0x00);
        assertEquals(0x05, rtc.read(1, 1), "seconds still read (BCD) from the clock");
        rtc.write(0, 1, 0x0D);
        assertEquals(0x80, rtc.read(1, 1), "register D (valid RAM and time) is read-only");
    }

    @Property
    void i8042OutputBufferBehaves(@ForAll("i8042") List<Access> accesses) {
        boolean[] kbd = new boolean[1];
        boolean[] aux = new boolean[1];
        int[] resets = new int[1];
        var kbc = new I8042(level -> kbd[0] = level, level -> aux[0] = level, () -> resets[0]++);
        // Bit 0 of the status register clears after every read of the data port. The machine resets only on command
        // 0xFE (pulse reset) or on an output port byte with bit 0 clear after command 0xD1 (Linux reboot=k).
        int pending = -1;
        int expectedResets = 0;
        for (Access a : accesses) {
            if (a.write()) {
                int v = (int) (a.value() & 0xFF);
                if (a.offset() == 4) {
                    expectedResets += v == 0xFE ? 1 : 0;
                    pending = List.of(0x60, 0xD1, 0xD2, 0xD3, 0xD4).contains(v) ? v : pending;
                } else if (a.offset() == 0) {
                    expectedResets += pending == 0xD1 && (v & 1) == 0 ? 1 : 0;
                    pending = -1;
                }
                kbc.write(a.offset(), a.size(), a.value());
                assertEquals(expectedResets, resets[0], "reset callbacks");
            } else {
                kbc.read(a.offset(), a.size());
                if (a.offset() == 0) {
                    assertEquals(0, kbc.read(4, 1) & 0x01, "OBF still set after reading data");
                    assertFalse(kbd[0] || aux[0], "IRQ 1/12 still raised with an empty output buffer");
                }
            }
        }
        // The controller still answers: self test (0xAA) gives 0x55 (Linux i8042_controller_selftest).
        kbc.write(4, 1, 0xAA);
        assertEquals(0x01, kbc.read(4, 1) & 0x01, "OBF after a command with an answer");
        assertEquals(0x55, kbc.read(0, 1));
        assertEquals(0, kbc.read(4, 1) & 0x01);
    }

    @Property
    void acpiPmActsOnlyOnItsExactSequences(@ForAll("acpi") List<Access> accesses) {
        int[] offs = new int[1];
        int[] resets = new int[1];
        var pm = new AcpiPm(() -> offs[0]++, () -> resets[0]++);
        int expectedOffs = 0;
        int expectedResets = 0;
        for (Access a : accesses) {
            int size = Math.min(a.size(), AcpiPm.PORT_COUNT - a.offset()); // the bus delivers no byte past the block
            if (a.write()) {
                boolean off = false;
                boolean reset = false;
                for (int i = 0; i < size; i++) {
                    int b = (int) (a.value() >>> (8 * i)) & 0xFF;
                    // PM1a_CNT high byte: SLP_EN (bit 13) with SLP_TYP (bits 12..10) 5, the \_S5 value.
                    off |= a.offset() + i == 5 && (b & 0x20) != 0 && (b >>> 2 & 7) == AcpiPm.S5_SLP_TYP;
                    reset |= a.offset() + i == AcpiPm.RESET_OFFSET && b == AcpiPm.RESET_VALUE;
                }
                expectedOffs += off ? 1 : 0;
                expectedResets += reset ? 1 : 0;
                pm.write(a.offset(), size, a.value());
            } else {
                pm.read(a.offset(), size);
            }
            assertEquals(expectedOffs, offs[0], "power-off callbacks");
            assertEquals(expectedResets, resets[0], "reset callbacks");
            // SCI_EN always reads 1, SLP_EN always reads 0.
            assertEquals(1, pm.read(4, 1) & 1);
            assertEquals(0, pm.read(5, 1) & 0x20);
        }
    }
}
