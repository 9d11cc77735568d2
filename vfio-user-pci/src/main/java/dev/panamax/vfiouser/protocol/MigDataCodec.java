package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_mig_data;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_MIG_DATA_READ} (17) and {@code VFIO_USER_MIG_DATA_WRITE} (18) (libvfio-user's
 * {@code include/vfio-user.h}): the device's migration data, which the kernel moves through the data fd of
 * {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}, in messages of {@code struct vfio_user_mig_data}
 * ({@link vfio_user_mig_data}: u32 argsz, u32 size, u8 data[]). Sizes in bytes, u32, checked unsigned.
 * <ul>
 *   <li>READ request: no data; {@code size} is the most bytes wanted, {@code argsz} at least {@code 8 + size}
 *       (the room for the reply). READ reply: {@code size} bytes of data, {@code argsz = 8 + size}; 0 bytes: the end
 *       of the device's data (as end of file on the kernel's data fd).</li>
 *   <li>WRITE request: {@code size} bytes of data, {@code argsz = 8 + size}. WRITE reply: empty.</li>
 * </ul>
 * Every {@code size} is at most the receiver's {@code max_data_xfer_size}.
 */
public final class MigDataCodec {
    /** {@code sizeof(struct vfio_user_mig_data)}: 8. */
    public static final int SIZE = (int) vfio_user_mig_data.sizeof();

    private MigDataCodec() {
    }

    /** A READ request: at most {@code size} bytes wanted; {@code argsz} u32. */
    public record ReadRequest(long argsz, long size) {
        public static ReadRequest of(long size) {
            return new ReadRequest(SIZE + size, size);
        }
    }

    /** A READ reply or a WRITE request: {@code data} (held, not copied) is {@code size} bytes; {@code argsz} u32. */
    public record Data(long argsz, byte[] data) {
        public static Data of(byte[] data) {
            return new Data(SIZE + (long) data.length, data);
        }
    }

    public static void encode(ReadRequest r, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_mig_data.argsz(s, (int) r.argsz);
        vfio_user_mig_data.size(s, (int) r.size);
    }

    public static void encode(Data d, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE + d.data.length);
        vfio_user_mig_data.argsz(s, (int) d.argsz);
        vfio_user_mig_data.size(s, d.data.length);
        MemorySegment.copy(d.data, 0, s, JAVA_BYTE, vfio_user_mig_data.data$offset(), d.data.length);
    }

    /**
     * @throws VfioUserProtocolException EINVAL for a payload other than 8 bytes or argsz below {@code 8 + size},
     *         E2BIG for a size above {@code maxDataXferSize}
     */
    public static ReadRequest decodeReadRequest(ByteBuf in, long maxDataXferSize) {
        Payloads.exactly(in, SIZE, "MIG_DATA_READ request");
        MemorySegment s = Payloads.view(in);
        in.skipBytes(SIZE);
        long argsz = Integer.toUnsignedLong(vfio_user_mig_data.argsz(s));
        long size = Integer.toUnsignedLong(vfio_user_mig_data.size(s));
        Payloads.countLimit(size, maxDataXferSize, "MIG_DATA_READ size");
        if (argsz < SIZE + size) {
            throw new VfioUserProtocolException(Errno.EINVAL, "MIG_DATA_READ argsz " + argsz + " is below 8 + size " + size);
        }
        return new ReadRequest(argsz, size);
    }

    /**
     * A READ reply or a WRITE request.
     *
     * @throws VfioUserProtocolException EINVAL when truncated, when size differs from the data bytes or argsz from
     *         {@code 8 + size}; E2BIG for a size above {@code maxDataXferSize}
     */
    public static Data decodeData(ByteBuf in, long maxDataXferSize, String what) {
        Payloads.atLeast(in, SIZE, what);
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_mig_data.argsz(s));
        long size = Integer.toUnsignedLong(vfio_user_mig_data.size(s));
        Payloads.dataCount(size, in.readableBytes() - SIZE, maxDataXferSize, what + " size");
        if (argsz != SIZE + size) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + " argsz " + argsz + " is not 8 + size " + size);
        }
        byte[] data = s.asSlice(SIZE, size).toArray(JAVA_BYTE);
        in.skipBytes(in.readableBytes());
        return new Data(argsz, data);
    }
}
