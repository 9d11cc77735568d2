package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.bindings.vfio_user_region_write_multi;
import dev.panamax.vfiouser.bindings.vfio_user_region_write_multi_reply;
import dev.panamax.vfiouser.bindings.vfio_user_write_one;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_REGION_WRITE_MULTI} (spec, "VFIO_USER_REGION_WRITE_MULTI"): several small region writes in one
 * message, sent only to a server that announced {@code write_multiple}. The request is
 * {@code struct vfio_user_region_write_multi} (u64 wr_cnt) followed by wr_cnt {@code struct vfio_user_write_one}
 * (u64 offset, u32 region, u32 count 1..{@code VFIO_USER_MULTI_DATA}, u8 data[{@code VFIO_USER_MULTI_DATA}]); the
 * reply is {@code struct vfio_user_region_write_multi_reply} (u64 wr_cnt, the writes completed). Read and written
 * through the {@code dev.panamax.vfiouser.bindings}; the limits are QEMU's ({@code hw/vfio-user/protocol.h}).
 */
public final class RegionWriteMultiCodec {
    private RegionWriteMultiCodec() {
    }

    /** One write: {@code data} is 1..{@code VFIO_USER_MULTI_DATA} (8) bytes; its length is the {@code count} field. */
    public record Write(long offset, long region, byte[] data) {
        public Write {
            if (data.length < 1 || data.length > vfio_user_h.VFIO_USER_MULTI_DATA()) {
                throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI write count " + data.length
                        + " is not 1.." + vfio_user_h.VFIO_USER_MULTI_DATA());
            }
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    public static void encode(List<Write> writes, ByteBuf out) {
        MemorySegment s = Payloads.append(out, vfio_user_region_write_multi.sizeof() + writes.size() * vfio_user_write_one.sizeof());
        vfio_user_region_write_multi.wr_cnt(s, writes.size());
        for (int i = 0; i < writes.size(); i++) {
            Write w = writes.get(i);
            MemorySegment one = vfio_user_region_write_multi.wrs(s, i);
            vfio_user_write_one.offset(one, w.offset);
            vfio_user_write_one.region(one, (int) w.region);
            vfio_user_write_one.count(one, w.data.length);
            MemorySegment.copy(w.data, 0, one, JAVA_BYTE, vfio_user_write_one.data$offset(), w.data.length);
        }
    }

    /** Writes the reply: the number of writes completed. */
    public static void encodeReply(long completed, ByteBuf out) {
        vfio_user_region_write_multi_reply.wr_cnt(Payloads.append(out, vfio_user_region_write_multi_reply.sizeof()), completed);
    }

    /**
     * @throws VfioUserProtocolException EINVAL when the payload is not 8 + 24 * wr_cnt bytes, wr_cnt is 0 or above
     *         {@code VFIO_USER_MULTI_MAX} (200), or a count is not 1..{@code VFIO_USER_MULTI_DATA} (8)
     */
    public static List<Write> decodeRequest(ByteBuf in) {
        int fixed = (int) vfio_user_region_write_multi.sizeof();
        Payloads.atLeast(in, fixed, "REGION_WRITE_MULTI request");
        MemorySegment s = Payloads.view(in);
        long n = vfio_user_region_write_multi.wr_cnt(s);
        int max = vfio_user_h.VFIO_USER_MULTI_MAX();
        if (n < 1 || n > max) {
            throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI wr_cnt " + Long.toUnsignedString(n) + " is not 1.." + max);
        }
        in.skipBytes(fixed);
        Payloads.exactly(in, (int) (n * vfio_user_write_one.sizeof()), "REGION_WRITE_MULTI writes");
        in.skipBytes(in.readableBytes());
        List<Write> writes = new ArrayList<>((int) n);
        for (int i = 0; i < n; i++) {
            MemorySegment one = vfio_user_region_write_multi.wrs(s, i);
            long count = Integer.toUnsignedLong(vfio_user_write_one.count(one));
            if (count < 1 || count > vfio_user_h.VFIO_USER_MULTI_DATA()) {
                throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI write " + i + " count " + count
                        + " is not 1.." + vfio_user_h.VFIO_USER_MULTI_DATA());
            }
            byte[] data = one.asSlice(vfio_user_write_one.data$offset(), count).toArray(JAVA_BYTE);
            writes.add(new Write(vfio_user_write_one.offset(one), Integer.toUnsignedLong(vfio_user_write_one.region(one)), data));
        }
        return writes;
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 8 bytes */
    public static long decodeReply(ByteBuf in) {
        int size = (int) vfio_user_region_write_multi_reply.sizeof();
        Payloads.exactly(in, size, "REGION_WRITE_MULTI reply");
        long completed = vfio_user_region_write_multi_reply.wr_cnt(Payloads.view(in));
        in.skipBytes(size);
        return completed;
    }
}
