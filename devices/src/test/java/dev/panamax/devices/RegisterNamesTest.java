package dev.panamax.devices;

import org.junit.jupiter.api.Test;

import java.time.Clock;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The register names the legacy devices give {@code --trace} (BusDevice.describe). */
class RegisterNamesTest {
    /**
     * What {@code --trace} prints for accesses to the legacy devices, through the real logger set-up (the launcher's
     * OptionsTest checks that {@code --trace} sets this level).
     */
    @Test
    void traceLinesNameTheRegisters() {
        ch.qos.logback.classic.Logger pioTrace =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("dev.panamax.trace.pio");
        var appender = new ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent>();
        appender.start();
        pioTrace.addAppender(appender);
        ch.qos.logback.classic.Level before = ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory
                .getLogger("dev.panamax.trace")).getLevel();
        try {
            dev.panamax.core.bus.Bus pio = new dev.panamax.core.bus.Bus("pio");
            pio.register(Serial16550.COM1_PORT, Serial16550.PORT_COUNT, "com1", new Serial16550(level -> { }, b -> { }));
            pio.register(CmosRtc.BASE_PORT, CmosRtc.PORT_COUNT, "rtc", new CmosRtc(Clock.systemUTC()));
            pio.read(0x3fd, 1); // trace off: nothing
            assertEquals(0, appender.list.size());
            ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("dev.panamax.trace"))
                    .setLevel(ch.qos.logback.classic.Level.TRACE); // what the launcher's --trace does
            pio.read(0x3fd, 1);
            pio.write(0x70, 1, 0x0B);
            pio.read(0x71, 1);
            pio.write(0x80, 1, 0x42);
            List<String> lines = appender.list.stream().map(e -> e.getFormattedMessage()).toList();
            assertEquals(List.of("pio read  0x3fd (com1+0x5 LSR) size 1 -> 0x60",
                    "pio write 0x70 (rtc+0x0 index REG_B) size 1 <- 0xb",
                    "pio read  0x71 (rtc+0x1 data REG_B) size 1 -> 0x2",
                    "pio write 0x80 (unclaimed) size 1 <- 0x42"), lines);
        } finally {
            pioTrace.detachAppender(appender);
            ((ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("dev.panamax.trace")).setLevel(before);
        }
    }

    @Test
    void uartRegistersAsThePc16550dDatasheetNamesThem() {
        String[] reads = {"RBR", "IER", "IIR", "LCR", "MCR", "LSR", "MSR", "SCR"};
        String[] writes = {"THR", "IER", "FCR", "LCR", "MCR", "LSR", "MSR", "SCR"};
        String[] dlabReads = {"DLL", "DLM", "IIR", "LCR", "MCR", "LSR", "MSR", "SCR"};
        String[] dlabWrites = {"DLL", "DLM", "FCR", "LCR", "MCR", "LSR", "MSR", "SCR"};
        for (int offset = 0; offset < 8; offset++) {
            assertEquals(reads[offset], Serial16550.registerName(offset, false, false));
            assertEquals(writes[offset], Serial16550.registerName(offset, true, false));
            assertEquals(dlabReads[offset], Serial16550.registerName(offset, false, true));
            assertEquals(dlabWrites[offset], Serial16550.registerName(offset, true, true));
        }
        assertNull(Serial16550.registerName(8, false, false));
    }

    @Test
    void uartDescribeFollowsDlab() {
        Serial16550 uart = new Serial16550(level -> { }, b -> { });
        assertEquals("THR", uart.describe(0, 1, true, 'x'));
        uart.write(3, 1, 0x80); // LCR: DLAB on
        assertEquals("DLL", uart.describe(0, 1, true, 0x0C));
        assertEquals("DLM", uart.describe(1, 1, false, 0));
        uart.write(3, 1, 0x03); // 8N1, DLAB off
        assertEquals("RBR", uart.describe(0, 1, false, 0));
        assertEquals("IER", uart.describe(1, 1, false, 0));
    }

    @Test
    void i8042DataStatusAndCommands() {
        I8042 kbc = new I8042(level -> { }, level -> { }, () -> { });
        assertEquals("status", kbc.describe(4, 1, false, 0x1C));
        assertEquals("command 0xfe (pulse reset)", kbc.describe(4, 1, true, 0xFE));
        assertEquals("command 0xaa (self test)", kbc.describe(4, 1, true, 0xAA));
        assertEquals("command 0x77", kbc.describe(4, 1, true, 0x77));
        assertEquals("data", kbc.describe(0, 1, false, 0x55));
        kbc.write(4, 1, 0x60); // write CTR: the next data byte is its argument
        assertEquals("data (for command 0x60)", kbc.describe(0, 1, true, 0x47));
        kbc.write(0, 1, 0x47);
        assertEquals("data", kbc.describe(0, 1, true, 0x47));
        assertNull(I8042.registerName(1, false, 0, -1));
    }

    @Test
    void cmosIndexAndDataNameTheRegister() {
        String[] names = {"SECONDS", "SECONDS_ALARM", "MINUTES", "MINUTES_ALARM", "HOURS", "HOURS_ALARM",
                "DAY_OF_WEEK", "DAY_OF_MONTH", "MONTH", "YEAR", "REG_A", "REG_B", "REG_C", "REG_D"};
        for (int i = 0; i < names.length; i++) {
            assertEquals(names[i], CmosRtc.registerName(i));
        }
        assertEquals("CENTURY", CmosRtc.registerName(0x32));
        assertEquals("RAM 0x0e", CmosRtc.registerName(0x0E));
        assertEquals("RAM 0x7f", CmosRtc.registerName(0x7F));

        CmosRtc rtc = new CmosRtc(Clock.systemUTC());
        assertEquals("index REG_B", rtc.describe(0, 1, true, 0x0B));
        assertEquals("index REG_A NMI off", rtc.describe(0, 1, true, 0x8A));
        rtc.write(0, 1, 0x0A);
        assertEquals("data REG_A", rtc.describe(1, 1, false, 0x26));
        assertEquals("index", rtc.describe(0, 1, false, 0xFF));
    }
}
