package dev.panamax.tests.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class OutputPumpTest {

    private static final String CONSOLE = "\u001bc\u001b[?7l\u001b[2JSeaBIOS (version 1.16.2)\r\n"
            + "\u001b[0mBooting from ROM...\r\n\u001bc\u001b[?7l\u001b[2Jhello\r\nlast without newline";

    @Test
    void serialConsoleLinesLoseCarriageReturnsAndControls() throws Exception {
        List<String> seen = new ArrayList<>();
        var pump = new OutputPump("t", new ByteArrayInputStream(CONSOLE.getBytes(StandardCharsets.UTF_8)), true,
                line -> { synchronized (seen) { seen.add(line); } });
        var lines = pump.finish(5_000);
        assertEquals(List.of("SeaBIOS (version 1.16.2)", "Booting from ROM...", "hello", "last without newline"), lines);
        assertEquals(lines, seen);
    }

    @Test
    void plainOutputKeepsControls() throws Exception {
        var pump = new OutputPump("t", new ByteArrayInputStream("\u001b[31mred\r\n".getBytes(StandardCharsets.UTF_8)),
                false, line -> { });
        assertEquals(List.of("\u001b[31mred"), pump.finish(5_000));
    }
}
