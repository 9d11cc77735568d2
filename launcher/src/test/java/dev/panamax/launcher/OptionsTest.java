package dev.panamax.launcher;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import dev.panamax.vmm.Verdict;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
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

    /** The machine's config errors name its settings; the command line names its options instead. */
    @Test
    void badMachineConfigsSayWhatIsWrongInTermsOfTheOptions() {
        assertError("--cpus must be between 1 and 254, not 0", "run", "-k", "/vmlinuz", "-c", "0");
        assertError("--memory must be at least 32M for a Linux guest, not 3145728 bytes", "run", "-k", "/vmlinuz", "-m", "3M");
        assertError("--memory must be a multiple of 2M, not 67112960 bytes", "run", "-k", "/vmlinuz", "-m", "65540K");
        assertError("kernel /nonexistent/vmlinuz: no such file", "run", "-k", "/nonexistent/vmlinuz");
        assertEquals("--device", Main.option("device"));
        assertError("--memory-backend anonymous cannot be used with vfio-user device vfio-user-pci,socket=/run/blk.sock:"
                        + " its server maps guest RAM through a file descriptor, which anonymous memory has not;"
                        + " use memfd or hugetlbfs (auto picks memfd)",
                "run", "-k", "/vmlinuz", "--memory-backend", "anonymous", "--device", "vfio-user-pci,socket=/run/blk.sock");
    }

    @Test
    void memoryBackends() {
        RunCommand run = new RunCommand();
        new CommandLine(run).parseArgs("-k", "/vmlinuz");
        assertEquals(dev.panamax.vmm.MemoryBackend.AUTO, run.size.memoryBackend);
        for (var b : dev.panamax.vmm.MemoryBackend.values()) {
            run = new RunCommand();
            new CommandLine(run).parseArgs("-k", "/vmlinuz", "--memory-backend", b.optionValue());
            assertEquals(b, run.size.memoryBackend);
        }
        TestCommand test = new TestCommand();
        new CommandLine(test).parseArgs("--image", "/img", "--script", "/s.sh", "--memory-backend", "HugeTLBfs");
        assertEquals(dev.panamax.vmm.MemoryBackend.HUGETLBFS, test.size.memoryBackend);
        CommandLine.ParameterException e = assertThrows(CommandLine.ParameterException.class,
                () -> new CommandLine(new RunCommand()).parseArgs("-k", "/vmlinuz", "--memory-backend", "file"));
        assertEquals(true, e.getMessage().contains("'file' is not a memory backend (anonymous, memfd, hugetlbfs or auto)"),
                e.getMessage());
    }

    @Test
    void traceSetsTheTraceLoggersLevel() {
        Logger trace = (Logger) LoggerFactory.getLogger("dev.panamax.trace");
        Level before = trace.getLevel();
        try {
            new CommandLine(new RunCommand()).parseArgs("-k", "/vmlinuz", "--trace");
            assertEquals(Level.TRACE, trace.getLevel());
        } finally {
            trace.setLevel(before);
        }
    }

    private static void assertError(String line, String... args) {
        StringWriter err = new StringWriter();
        int status = Main.execute(new PrintWriter(new StringWriter()), new PrintWriter(err), args);
        assertEquals(Verdict.ERROR_STATUS, status, err.toString());
        assertEquals("panamax: error: " + line + System.lineSeparator(), err.toString());
    }
}
