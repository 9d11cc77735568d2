package dev.panamax.vmm;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The guest's console on the host: control sequences reach a terminal filtered, anything else raw; the line watcher sees raw lines. */
class ConsoleTest {
    /** Clears the screen, sets the window title, puts "rm -rf ~" on the clipboard (OSC 52), asks for the device attributes. */
    static final String HOSTILE = "boot ok\u001b[2J\u001b]0;owned\u0007\u001b]52;c;cm0gLXJmIH4=\u001b\\\u001b[c\r\n";

    static byte[] through(boolean terminal, List<String> lines) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Console c = new Console(out, terminal, lines::add);
        for (byte b : HOSTILE.getBytes(StandardCharsets.ISO_8859_1)) {
            c.guestOutput(b & 0xFF);
        }
        return out.toByteArray();
    }

    @Test
    void aTerminalGetsNoControlSequences() {
        List<String> lines = new ArrayList<>();
        assertEquals("boot ok\r\n", new String(through(true, lines), StandardCharsets.ISO_8859_1));
        assertEquals(List.of(HOSTILE.substring(0, HOSTILE.length() - 2)), lines, "the watcher sees the raw line");
    }

    @Test
    void aFileOrPipeGetsTheBytesAsTheyCame() {
        assertArrayEquals(HOSTILE.getBytes(StandardCharsets.ISO_8859_1), through(false, new ArrayList<>()));
    }
}
