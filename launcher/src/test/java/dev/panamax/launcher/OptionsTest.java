package dev.panamax.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class OptionsTest {
    @Test
    void memorySizesAsQemuUsersWriteThem() {
        assertEquals(512L << 20, SizeConverter.parse("512M"));
        assertEquals(512L << 20, SizeConverter.parse("512"));
        assertEquals(2L << 30, SizeConverter.parse("2G"));
        assertEquals(2L << 30, SizeConverter.parse("2g"));
        assertEquals(2L << 30, SizeConverter.parse("2GiB"));
        assertEquals(1L << 20, SizeConverter.parse("1024K"));
        assertEquals(1L << 40, SizeConverter.parse("1T"));
        for (String bad : new String[]{"", "M", "12X", "-5M", "0", "1.5G", "99999999999999T"}) {
            assertThrows(CommandLine.TypeConversionException.class, () -> SizeConverter.parse(bad), bad);
        }
    }

    @Test
    void durations() {
        DurationConverter c = new DurationConverter();
        assertEquals(Duration.ofSeconds(120), c.convert("120s"));
        assertEquals(Duration.ofSeconds(90), c.convert("90"));
        assertEquals(Duration.ofMinutes(5), c.convert("5m"));
        assertEquals(Duration.ofMillis(500), c.convert("500ms"));
        for (String bad : new String[]{"", "s", "5x", "0s", "-1s"}) {
            assertThrows(CommandLine.TypeConversionException.class, () -> c.convert(bad), bad);
        }
    }

    @Test
    void badMachineConfigsSayWhatIsWrong() {
        assertEquals("--cpus must be between 1 and 255, not 0", assertThrows(PanamaxException.class,
                () -> new MachineConfig(null, null, "", 0, 512L << 20, null, false)).getMessage());
        assertThrows(PanamaxException.class, () -> new MachineConfig(null, null, "", 1, 3L << 20, null, false));
        assertThrows(PanamaxException.class, () -> new MachineConfig(null, null, "", 1, (64L << 20) + 4096, null, false));
    }
}
