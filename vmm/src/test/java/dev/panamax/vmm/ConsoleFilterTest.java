package dev.panamax.vmm;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link ConsoleFilter}, exhaustively over every byte, every pair of bytes and every three-byte sequence starting
 * with ESC or C2, in every state a prefix can leave it in, and over random streams (a fixed seed) biased towards
 * sequence bytes; jqwik is not in the local repository, so the properties are checked in plain loops.
 */
class ConsoleFilterTest {
    /** The bytes a prefix can be made of that lead to each of the filter's states. */
    static final String[] PREFIXES = {"", "\u001b", "\u001b(", "\u001b[1;", "\u001b]0;x", "\u001b]0;x\u001b", "\u00c2", "abc"};

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.ISO_8859_1);
    }

    static byte[] filter(byte[] in) {
        return new ConsoleFilter().filter(in);
    }

    static String filter(String in) {
        return new String(filter(bytes(in)), StandardCharsets.ISO_8859_1);
    }

    static boolean shown(int b) {
        return b == '\n' || b == '\r' || b == '\t' || b == '\b' || (b >= 0x20 && b != 0x7F && b != 0xC2);
    }

    /** The invariant of every output: no control other than TAB, LF, CR, BS, no DEL, C2 only before A0..BF. */
    static void assertSafe(byte[] in, byte[] out) {
        for (int i = 0; i < out.length; i++) {
            int b = out[i] & 0xFF;
            boolean ok = b == 0xC2 ? i + 1 < out.length && (out[i + 1] & 0xFF) >= 0xA0 && (out[i + 1] & 0xFF) <= 0xBF : shown(b) || b >= 0x80;
            if (!ok) {
                fail(String.format("byte 0x%02x at %d of the output for %s", b, i, hex(in)));
            }
        }
    }

    /** Output is what input had, in order, some dropped (a subsequence), and as many LFs. */
    static void assertSubsequenceWithEveryLf(byte[] in, byte[] out) {
        int j = 0;
        for (int i = 0; i < in.length && j < out.length; i++) {
            if (in[i] == out[j]) {
                j++;
            }
        }
        assertEquals(out.length, j, "the output is not a subsequence of " + hex(in));
        assertEquals(count(in, '\n'), count(out, '\n'), "LFs of " + hex(in));
    }

    static int count(byte[] b, int v) {
        int n = 0;
        for (byte x : b) {
            n += x == v ? 1 : 0;
        }
        return n;
    }

    static String hex(byte[] b) {
        StringBuilder s = new StringBuilder();
        for (byte x : b) {
            s.append(String.format("%02x ", x & 0xFF));
        }
        return s.toString().trim();
    }

    /** After any input, LF then text shows that text: the guest cannot hide what follows. */
    static void assertRecovers(byte[] in) {
        ConsoleFilter f = new ConsoleFilter();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte b : in) {
            f.accept(b, out);
        }
        out.reset();
        for (byte b : bytes("\nok")) {
            f.accept(b, out);
        }
        assertEquals("\nok", out.toString(StandardCharsets.ISO_8859_1), "after " + hex(in));
    }

    @Test
    void everyByteAloneIsShownOrDropped() {
        for (int b = 0; b < 256; b++) {
            byte[] out = filter(new byte[]{(byte) b});
            assertArrayEquals(shown(b) ? new byte[]{(byte) b} : new byte[0], out, String.format("byte 0x%02x", b));
        }
    }

    @Test
    void everyPairAndEveryEscapeOrC2TripleAfterEveryStateIsSafe() {
        int checked = 0;
        for (String prefix : PREFIXES) {
            byte[] p = bytes(prefix);
            for (int a = 0; a < 256; a++) {
                for (int b = 0; b < 256; b++) {
                    byte[] in = java.util.Arrays.copyOf(p, p.length + 2);
                    in[p.length] = (byte) a;
                    in[p.length + 1] = (byte) b;
                    byte[] out = filter(in);
                    assertSafe(in, out);
                    assertSubsequenceWithEveryLf(in, out);
                    assertRecovers(in);
                    checked++;
                }
            }
            for (int lead : new int[]{0x1B, 0xC2}) {
                for (int a = 0; a < 256; a++) {
                    for (int b = 0; b < 256; b++) {
                        byte[] in = java.util.Arrays.copyOf(p, p.length + 3);
                        in[p.length] = (byte) lead;
                        in[p.length + 1] = (byte) a;
                        in[p.length + 2] = (byte) b;
                        byte[] out = filter(in);
                        assertSafe(in, out);
                        assertSubsequenceWithEveryLf(in, out);
                        checked++;
                    }
                }
            }
        }
        assertEquals(PREFIXES.length * 3 * 65536, checked);
    }

    @Test
    void randomStreamsAreSafe() {
        Random random = new Random(15);
        byte[] alphabet = bytes("\u001b[]P^_X\\;0123456789?mAHJKlh\u0007\n\r\t\b \u007f\u00c2\u0080\u009b\u00a0\u00e9azAZ(%#");
        for (int run = 0; run < 20_000; run++) {
            byte[] in = new byte[random.nextInt(64)];
            for (int i = 0; i < in.length; i++) {
                in[i] = random.nextInt(8) == 0 ? (byte) random.nextInt(256) : alphabet[random.nextInt(alphabet.length)];
            }
            byte[] out = filter(in);
            assertSafe(in, out);
            assertSubsequenceWithEveryLf(in, out);
            assertRecovers(in);
        }
    }

    @Test
    void textWithoutControlsPassesUnchanged() {
        Random random = new Random(16);
        for (int run = 0; run < 2_000; run++) {
            StringBuilder s = new StringBuilder();
            for (int i = random.nextInt(200); i > 0; i--) {
                int kind = random.nextInt(10);
                s.append(kind == 0 ? "\r\n" : kind == 1 ? "\t" : kind == 2 ? "\u00e9\u20ac\u00a0" : String.valueOf((char) (0x20 + random.nextInt(0x5F))));
            }
            byte[] utf8 = s.toString().getBytes(StandardCharsets.UTF_8);
            assertArrayEquals(utf8, filter(utf8), s.toString());
        }
    }

    @Test
    void knownSequencesAreDroppedWhole() {
        assertEquals("red plain", filter("\u001b[1;31mred\u001b[0m plain"));
        assertEquals("ab", filter("a\u001b]0;title\u0007b"), "OSC ended by BEL");
        assertEquals("ab", filter("a\u001b]52;c;cm0gLXJmIH4=\u001b\\b"), "OSC 52 (clipboard) ended by ST");
        assertEquals("ab", filter("a\u001bP+q544e\u001b\\b"), "DCS (XTGETTCAP)");
        assertEquals("ab", filter("a\u001b[6nb"), "a cursor position query, whose answer would land in the host's input");
        assertEquals("ab", filter("a\u001b7\u001b(B\u001b#8\u001bcb"), "two- and three-byte escapes");
        assertEquals("a\nrest", filter("a\u001b]0;never ended\nrest"), "LF ends an unterminated control string");
        assertEquals("a2Jb", filter("a\u00c2\u009b2Jb"), "C1 CSI as UTF-8 is dropped, the bytes after it are then mere text");
        assertEquals("ab", filter("a\u0000\u0001\u0007\u000b\u000c\u000e\u001f\u007fb"), "other C0 controls and DEL");
        assertEquals("a\b\t\r\nb", filter("a\b\t\r\nb"));
        assertEquals("x\u00c2\u00a0y", filter("x\u00c2\u00a0y"), "U+00A0 passes");
        assertTrue(filter("\u00c2\u001b[A\u0085").indexOf('\u00c2') < 0, "no C1 spliced from a C2 and a byte after a dropped sequence");
    }
}
