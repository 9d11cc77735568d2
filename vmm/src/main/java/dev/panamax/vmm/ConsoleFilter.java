package dev.panamax.vmm;

import java.io.ByteArrayOutputStream;

/**
 * Takes the terminal's control sequences out of the guest's console bytes before they reach the host's
 * terminal, where a hostile guest could otherwise retitle the window, remap keys, write to the clipboard
 * (OSC 52), move the cursor over earlier output or answer queries into the host shell's input. The
 * sequences are those of ECMA-48 (5th edition, 1991) as xterm parses them ("XTerm Control Sequences"):
 * <ul>
 *   <li>C0 controls (0x00..0x1F) are dropped except TAB, LF, CR and BS; DEL (0x7F) is dropped.</li>
 *   <li>ESC starts a sequence that is dropped whole: {@code ESC [} a CSI (parameter bytes 0x30..0x3F, intermediate
 *       bytes 0x20..0x2F, one final byte 0x40..0x7E); {@code ESC ]} (OSC), {@code ESC P} (DCS), {@code ESC X} (SOS),
 *       {@code ESC ^} (PM), {@code ESC _} (APC) a control string up to BEL or ST ({@code ESC \}); any other
 *       {@code ESC} intermediates (0x20..0x2F) and one final byte (0x30..0x7E).</li>
 *   <li>C1 controls as UTF-8 (U+0080..U+009F, bytes {@code C2 80}..{@code C2 9F}: a UTF-8 terminal reads U+009B
 *       as CSI) are dropped, and so is a C2 not followed by a continuation byte (it is not UTF-8, and a byte shown
 *       after it once the sequence between them is dropped could make a C1 control); other bytes above 0x7F pass, so
 *       UTF-8 text stays intact.</li>
 * </ul>
 * A byte that cannot continue a sequence ends it and is then filtered as any byte; a LF always passes, also
 * inside an unterminated control string, so the guest cannot hide the rest of its output (e.g. a panic) by
 * opening one. Lone printable bytes pass unchanged. Not thread-safe: one instance per output, fed in order.
 */
final class ConsoleFilter {
    private static final int ESC = 0x1B;
    private static final int BEL = 0x07;

    private enum State { TEXT, ESCAPE, ESCAPE_INTERMEDIATE, CSI, STRING, STRING_ESCAPE, UTF8_C2 }

    private State state = State.TEXT;

    /**
     * Filters one byte of guest output.
     *
     * @param b   the byte, 0..255
     * @param out receives the bytes to show, 0 to 2 of them
     */
    void accept(int b, ByteArrayOutputStream out) {
        b &= 0xFF;
        switch (state) {
            case TEXT -> text(b, out);
            case ESCAPE -> {
                if (b == '[') {
                    state = State.CSI;
                } else if (b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_') {
                    state = State.STRING;
                } else if (b >= 0x20 && b <= 0x2F) {
                    state = State.ESCAPE_INTERMEDIATE;
                } else if (b >= 0x30 && b <= 0x7E) {
                    state = State.TEXT; // a two-byte escape sequence, e.g. ESC c (reset), ESC 7
                } else {
                    restart(b, out);
                }
            }
            case ESCAPE_INTERMEDIATE -> {
                if (b >= 0x30 && b <= 0x7E) {
                    state = State.TEXT;
                } else if (b < 0x20 || b > 0x2F) {
                    restart(b, out);
                }
            }
            case CSI -> {
                if (b >= 0x40 && b <= 0x7E) {
                    state = State.TEXT;
                } else if (b < 0x20 || b > 0x3F) {
                    restart(b, out);
                }
            }
            case STRING -> {
                if (b == BEL) {
                    state = State.TEXT;
                } else if (b == ESC) {
                    state = State.STRING_ESCAPE;
                } else if (b == '\n') {
                    restart(b, out);
                }
            }
            case STRING_ESCAPE -> {
                if (b == '\\') {
                    state = State.TEXT; // ST
                } else {
                    restart(b, out); // ESC ends the string (xterm), and this byte starts anew
                }
            }
            case UTF8_C2 -> {
                state = State.TEXT;
                if (b >= 0xA0 && b <= 0xBF) {
                    out.write(0xC2); // U+00A0..U+00BF; C2 is only ever shown together with its continuation byte
                    out.write(b);
                } else if (b < 0x80 || b > 0xBF) {
                    text(b, out); // a lone C2 is not UTF-8: dropped
                }
            }
        }
    }

    /** Filters {@code data} as a whole; for tests. */
    byte[] filter(byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(data.length);
        for (byte b : data) {
            accept(b, out);
        }
        return out.toByteArray();
    }

    private void restart(int b, ByteArrayOutputStream out) {
        state = State.TEXT;
        text(b, out);
    }

    private void text(int b, ByteArrayOutputStream out) {
        if (b == ESC) {
            state = State.ESCAPE;
        } else if (b == 0xC2) {
            state = State.UTF8_C2;
        } else if (b == '\n' || b == '\r' || b == '\t' || b == '\b' || (b >= 0x20 && b != 0x7F)) {
            out.write(b);
        }
    }
}
