package dev.panamax.core.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** {@link StateWriter} and {@link StateReader}: the layout, and each refusal with its message. */
class StateCodecTest {
    private static byte[] sample() {
        return new StateWriter("TEST", 2).u8(0xAB).bool(true).u16(0xBEEF).u32(0xDEADBEEF).u64(0x0123_4567_89AB_CDEFL)
                .bytes(new byte[] {1, 2, 3}).raw(new byte[] {9}).toByteArray();
    }

    @Test
    void layoutIsTagVersionThenLittleEndianFields() {
        byte[] s = sample();
        assertArrayEquals(new byte[] {'T', 'E', 'S', 'T', 2, 0, (byte) 0xAB, 1, (byte) 0xEF, (byte) 0xBE,
                (byte) 0xEF, (byte) 0xBE, (byte) 0xAD, (byte) 0xDE,
                (byte) 0xEF, (byte) 0xCD, (byte) 0xAB, (byte) 0x89, 0x67, 0x45, 0x23, 0x01,
                3, 0, 0, 0, 1, 2, 3, 9}, s);
    }

    @Test
    void readsBackWhatWasWritten() {
        var r = new StateReader("test", sample(), "TEST", 2);
        assertEquals(2, r.version());
        assertEquals(0xAB, r.u8());
        assertTrue(r.bool("flag"));
        assertEquals(0xBEEF, r.u16());
        assertEquals(0xDEADBEEF, r.u32());
        assertEquals(0x0123_4567_89AB_CDEFL, r.u64());
        assertArrayEquals(new byte[] {1, 2, 3}, r.bytes("blob", 3));
        assertArrayEquals(new byte[] {9}, r.raw(1));
        assertEquals(0, r.remaining());
        r.end();
    }

    @Test
    void truncationNamesTheState() {
        byte[] s = Arrays.copyOf(sample(), 12);
        var r = new StateReader("com1", s, "TEST", 2);
        r.u8();
        r.u8();
        r.u16();
        var e = assertThrows(StateException.class, r::u32);
        assertEquals("com1 state: truncated at byte 10 (4 bytes needed, 2 left)", e.getMessage());
        assertThrows(StateException.class, () -> new StateReader("com1", new byte[] {'T', 'E', 'S'}, "TEST", 1));
        assertThrows(StateException.class, () -> new StateReader("com1", null, "TEST", 1));
    }

    @Test
    void wrongTagFutureVersionAndVersionZeroAreRefused() {
        var tag = assertThrows(StateException.class, () -> new StateReader("rtc", sample(), "CMOS", 2));
        assertEquals("rtc state: tag 'TEST' is not CMOS", tag.getMessage());
        var future = assertThrows(StateException.class, () -> new StateReader("rtc", sample(), "TEST", 1));
        assertEquals("rtc state: version 2 is newer than this build's 1", future.getMessage());
        byte[] zero = sample();
        zero[4] = 0;
        assertThrows(StateException.class, () -> new StateReader("rtc", zero, "TEST", 2));
    }

    @Test
    void lengthsAreUnsignedAndBounded() {
        byte[] huge = new StateWriter("TEST", 1).u32(0xFFFF_FFF0).toByteArray();
        var e = assertThrows(StateException.class, () -> new StateReader("x", huge, "TEST", 1).bytes("queue", Integer.MAX_VALUE));
        assertTrue(e.getMessage().contains("4294967280 bytes"), e.getMessage()); // unsigned, not negative
        byte[] shortOne = new StateWriter("TEST", 1).u32(100).raw(new byte[10]).toByteArray();
        var e1 = assertThrows(StateException.class, () -> new StateReader("x", shortOne, "TEST", 1).bytes("queue", 1000));
        assertEquals("x state: truncated at byte 10 (100 bytes needed, 10 left)", e1.getMessage());
        byte[] tooLong = new StateWriter("TEST", 1).bytes(new byte[5]).toByteArray();
        var e2 = assertThrows(StateException.class, () -> new StateReader("x", tooLong, "TEST", 1).bytes("queue", 4));
        assertEquals("x state: queue is 5 bytes at byte 6, more than its 4", e2.getMessage());
    }

    @Test
    void trailingBytesBadBooleansAndRangesAreRefused() {
        byte[] s = new StateWriter("TEST", 1).u8(7).u8(2).toByteArray();
        var r = new StateReader("x", s, "TEST", 1);
        assertEquals("x state: 2 bytes of trailing garbage at byte 6", assertThrows(StateException.class, r::end).getMessage());
        r.u8();
        assertThrows(StateException.class, () -> r.bool("flag"));
        assertThrows(StateException.class, () -> r.check("ier", 0x10, 0, 0x0F));
        assertEquals(5, r.check("ier", 5, 0, 0x0F));
        assertFalse(r.invalid("detail").getMessage().isEmpty());
    }

    @Test
    void writerRefusesBadTagsAndVersions() {
        assertThrows(IllegalArgumentException.class, () -> new StateWriter("ABC", 1));
        assertThrows(IllegalArgumentException.class, () -> new StateWriter("AB D", 1));
        assertThrows(IllegalArgumentException.class, () -> new StateWriter("ABCD", 0));
        assertThrows(IllegalArgumentException.class, () -> new StateWriter("ABCD", 0x10000));
    }
}
