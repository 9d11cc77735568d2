package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HeaderTest {
    private static final long MAX = 1 << 20;

    private static ByteBuf raw(int id, int command, long size, int flags, int error) {
        ByteBuf b = Unpooled.buffer();
        b.writeShortLE(id);
        b.writeShortLE(command);
        b.writeIntLE((int) size);
        b.writeIntLE(flags);
        b.writeIntLE(error);
        return b;
    }

    private static VfioUserProtocolException fails(ByteBuf b, int errno) {
        VfioUserProtocolException e = assertThrows(VfioUserProtocolException.class, () -> VfioUserHeader.decode(b, MAX));
        assertEquals(errno, e.errno(), e.getMessage());
        return e;
    }

    @Test
    void roundTripsEveryCommandAndType() {
        for (VfioUserCommand c : VfioUserCommand.values()) {
            for (VfioUserHeader h : new VfioUserHeader[] {
                    VfioUserHeader.command(0xFFFF, c, 40, true),
                    VfioUserHeader.command(7, c, 0, false),
                    VfioUserHeader.reply(1, c, 8),
                    VfioUserHeader.errorReply(2, c, Errno.EEXIST)}) {
                ByteBuf b = Unpooled.buffer();
                h.encode(b);
                assertEquals(16, b.readableBytes());
                assertEquals(h, VfioUserHeader.decode(b, MAX));
            }
        }
    }

    @Test
    void bitsSitWhereTheSpecSays() {
        ByteBuf b = Unpooled.buffer();
        VfioUserHeader.errorReply(0xABCD, VfioUserCommand.REGION_WRITE_MULTI, Errno.ENOSPC).encode(b);
        assertEquals(0xABCD, b.getUnsignedShortLE(0));
        assertEquals(15, b.getUnsignedShortLE(2));
        assertEquals(16, b.getIntLE(4));
        assertEquals(0x21, b.getIntLE(8));
        assertEquals(Errno.ENOSPC, b.getIntLE(12));
        VfioUserHeader h = VfioUserHeader.decode(b, MAX);
        assertTrue(h.isReply());
        assertTrue(h.isError());
        assertFalse(h.noReply());
        assertEquals(0, h.payloadSize());
    }

    @Test
    void truncatedHeader() {
        ByteBuf b = raw(1, 1, 16, 0, 0);
        fails(b.slice(0, 15), Errno.EINVAL);
    }

    @Test
    void sizeBelowHeaderAndAboveLimit() {
        fails(raw(1, 1, 15, 0, 0), Errno.EINVAL);
        fails(raw(1, 1, 0, 0, 0), Errno.EINVAL);
        VfioUserProtocolException e = fails(raw(9, 4, MAX + 1, 0, 0), Errno.E2BIG);
        assertEquals(9, e.messageId());
        assertEquals(4, e.command());
        fails(raw(1, 1, 0xFFFFFFFFL, 0, 0), Errno.E2BIG);
    }

    @Test
    void unknownCommands() {
        for (int code : new int[] {0, 14, 19, 0xFFFF}) { // 16-18: migration v2 (issue 17)
            VfioUserProtocolException e = fails(raw(3, code, 16, 0, 0), Errno.ENOSYS);
            assertEquals(3, e.messageId());
            assertEquals(code, e.command());
        }
    }

    @Test
    void badFlags() {
        fails(raw(1, 1, 16, 0x2, 0), Errno.EINVAL);                 // type 2
        fails(raw(1, 1, 16, 0xF, 0), Errno.EINVAL);                 // type 15
        fails(raw(1, 1, 16, 0x40, 0), Errno.EINVAL);                // undefined bit 6
        fails(raw(1, 1, 16, 0x80000000, 0), Errno.EINVAL);          // undefined bit 31
        fails(raw(1, 1, 16, 0x11, 0), Errno.EINVAL);                // No_reply in a reply
        fails(raw(1, 1, 16, 0x20, 0), Errno.EINVAL);                // Error in a command
        fails(raw(1, 1, 20, 0x21, Errno.EIO), Errno.EINVAL);        // error reply with a payload
    }

    @Test
    void constructorRejectsNonsense() {
        assertThrows(IllegalArgumentException.class, () -> new VfioUserHeader(0x10000, VfioUserCommand.VERSION, 16, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new VfioUserHeader(1, VfioUserCommand.VERSION, 15, 0, 0));
    }
}
