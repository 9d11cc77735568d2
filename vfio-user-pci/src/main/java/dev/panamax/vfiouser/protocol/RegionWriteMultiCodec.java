package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code VFIO_USER_REGION_WRITE_MULTI} (spec, "VFIO_USER_REGION_WRITE_MULTI"): several small
 * region writes in one message, sent only to a server that announced {@code write_multiple}.
 * <pre>
 *   request: 0 u64 wr_cnt   8 wr_cnt writes of 24 bytes each:
 *              0 u64 offset   8 u32 region   12 u32 count (1..8)   16 u8[8] data
 *   reply:   0 u64 wr_cnt (writes completed)
 * </pre>
 */
public final class RegionWriteMultiCodec {
    public static final int ONE_SIZE = 24;
    public static final int DATA_BYTES = 8;
    /** QEMU's VFIO_USER_MULTI_MAX: the most writes its client coalesces; we accept no more. */
    public static final int MAX_WRITES = 200;

    private RegionWriteMultiCodec() {
    }

    /** One write: {@code data} is 1..8 bytes; its length is the {@code count} field. */
    public record Write(long offset, long region, byte[] data) {
        public Write {
            if (data.length < 1 || data.length > DATA_BYTES) {
                throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI write count " + data.length + " is not 1..8");
            }
            data = data.clone();
        }

        @Override
        public byte[] data() {
            return data.clone();
        }
    }

    public static void encode(List<Write> writes, ByteBuf out) {
        out.writeLongLE(writes.size());
        for (Write w : writes) {
            out.writeLongLE(w.offset);
            out.writeIntLE((int) w.region);
            out.writeIntLE(w.data.length);
            out.writeBytes(w.data);
            out.writeZero(DATA_BYTES - w.data.length);
        }
    }

    /** Writes the reply: the number of writes completed. */
    public static void encodeReply(long completed, ByteBuf out) {
        out.writeLongLE(completed);
    }

    /** @throws VfioUserProtocolException EINVAL when the payload is not 8 + 24 * wr_cnt bytes, wr_cnt is 0 or above 200, or a count is not 1..8 */
    public static List<Write> decodeRequest(ByteBuf in) {
        Payloads.atLeast(in, 8, "REGION_WRITE_MULTI request");
        long n = in.readLongLE();
        if (n < 1 || n > MAX_WRITES) {
            throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI wr_cnt " + Long.toUnsignedString(n) + " is not 1.." + MAX_WRITES);
        }
        Payloads.exactly(in, (int) n * ONE_SIZE, "REGION_WRITE_MULTI writes");
        List<Write> writes = new ArrayList<>((int) n);
        for (int i = 0; i < n; i++) {
            long offset = in.readLongLE();
            long region = in.readUnsignedIntLE();
            long count = in.readUnsignedIntLE();
            byte[] data = Payloads.bytes(in, DATA_BYTES);
            if (count < 1 || count > DATA_BYTES) {
                throw new VfioUserProtocolException(Errno.EINVAL, "REGION_WRITE_MULTI write " + i + " count " + count + " is not 1..8");
            }
            writes.add(new Write(offset, region, java.util.Arrays.copyOf(data, (int) count)));
        }
        return writes;
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 8 bytes */
    public static long decodeReply(ByteBuf in) {
        Payloads.exactly(in, 8, "REGION_WRITE_MULTI reply");
        return in.readLongLE();
    }
}
