package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfio.bindings.vfio_device_feature_mig_state;
import dev.panamax.vfio.bindings.vfio_device_feature_migration;
import dev.panamax.vfiouser.bindings.vfio_user_device_feature;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * {@code VFIO_USER_DEVICE_FEATURE} (command 16, libvfio-user's {@code include/vfio-user.h}; the seed spec predates it):
 * request and reply are {@code struct vfio_device_feature} of {@code <linux/vfio.h>} ({@link vfio_user_device_feature}:
 * u32 argsz, u32 flags, u8 data[]), as the {@code VFIO_DEVICE_FEATURE} ioctl takes it. {@code flags} holds the feature
 * index ({@code VFIO_DEVICE_FEATURE_MASK}) and the GET/SET/PROBE bits; {@code argsz} is the whole struct's size in
 * bytes, data included, and in a GET request the room the caller offers for the reply's data. The migration v2
 * features' data: {@link MigrationInfo} ({@code struct vfio_device_feature_migration}, feature 1) and
 * {@link MigState} ({@code struct vfio_device_feature_mig_state}, feature 2). The DMA logging features'
 * ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START} 6, {@code _STOP} 7, {@code _REPORT} 8): {@link DmaLoggingControl} and
 * {@link DmaLoggingReport}, as libvfio-user lays them out: the kernel's structs pass the ranges and the bitmap by
 * pointer, vfio-user carries them inline after the struct.
 */
public final class DeviceFeatureCodec {
    /** {@code sizeof(struct vfio_device_feature)}: 8, the payload without data. */
    public static final int SIZE = (int) vfio_user_device_feature.sizeof();
    /** {@code sizeof(struct vfio_device_feature_migration)} and {@code sizeof(struct vfio_device_feature_mig_state)}: 8. */
    public static final int MIGRATION_SIZE = (int) vfio_device_feature_migration.sizeof();
    public static final int MIG_STATE_SIZE = (int) vfio_device_feature_mig_state.sizeof();
    /** {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}, {@code _STOP}, {@code _REPORT} of {@code <linux/vfio.h>}: feature indexes. */
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
    public static final int VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
    /** {@code struct vfio_user_device_feature_dma_logging_control} without its ranges: u64 page_size, u32 num_ranges, u32 reserved. */
    public static final int DMA_LOGGING_CONTROL_SIZE = 16;
    /** {@code struct vfio_user_device_feature_dma_logging_range}: u64 iova, u64 length. */
    public static final int DMA_LOGGING_RANGE_SIZE = 16;
    /** {@code struct vfio_user_device_feature_dma_logging_report} without its bitmap: u64 iova, u64 length, u64 page_size. */
    public static final int DMA_LOGGING_REPORT_SIZE = 24;
    /** The most ranges one DMA_LOGGING_START may name (libvfio-user has no limit; ours bounds the request). */
    public static final int MAX_DMA_LOGGING_RANGES = 1024;
    /** Every flag bit {@code <linux/vfio.h>} defines: the index, GET, SET, PROBE. */
    private static final int KNOWN_FLAGS = VFIO_DEVICE_FEATURE_MASK() | VFIO_DEVICE_FEATURE_GET()
            | VFIO_DEVICE_FEATURE_SET() | VFIO_DEVICE_FEATURE_PROBE();

    private DeviceFeatureCodec() {
    }

    /**
     * One {@code struct vfio_device_feature}.
     *
     * @param argsz bytes, u32 (0..2^32-1 held in a long)
     * @param flags feature index and GET/SET/PROBE bits
     * @param data  the feature's data, held, not copied
     */
    public record Feature(long argsz, int flags, byte[] data) {
        /** A request carrying {@code data}, argsz its exact size. */
        public static Feature of(int flags, byte[] data) {
            return new Feature(SIZE + data.length, flags, data);
        }

        /** @return the feature index, {@code flags & VFIO_DEVICE_FEATURE_MASK} */
        public int feature() {
            return flags & VFIO_DEVICE_FEATURE_MASK();
        }

        public boolean get() {
            return (flags & VFIO_DEVICE_FEATURE_GET()) != 0;
        }

        public boolean set() {
            return (flags & VFIO_DEVICE_FEATURE_SET()) != 0;
        }

        public boolean probe() {
            return (flags & VFIO_DEVICE_FEATURE_PROBE()) != 0;
        }
    }

    /** {@code struct vfio_device_feature_migration}: {@code flags}, {@code VFIO_MIGRATION_STOP_COPY} | {@code _P2P} | {@code _PRE_COPY}. */
    public record MigrationInfo(long flags) {
    }

    /**
     * {@code struct vfio_device_feature_mig_state}.
     *
     * @param deviceState a value of {@code enum vfio_device_mig_state}, u32
     * @param dataFd      the kernel's data fd; over vfio-user always -1 (the data moves by MIG_DATA_READ/WRITE)
     */
    public record MigState(int deviceState, int dataFd) {
        /**
         * @return {@code deviceState} as the enum
         * @throws VfioUserProtocolException EINVAL for a value the enum does not define (the number read unsigned)
         */
        public VfioDeviceMigState state() {
            try {
                return VfioDeviceMigState.of(deviceState);
            } catch (IllegalArgumentException e) {
                throw new VfioUserProtocolException(Errno.EINVAL, e.getMessage());
            }
        }
    }

    /**
     * One range of guest memory to log: {@code struct vfio_user_device_feature_dma_logging_range}.
     *
     * @param iova   DMA address of its first byte (guest-physical for a VM), u64
     * @param length bytes, u64
     */
    public record DmaRange(long iova, long length) {
    }

    /**
     * DMA_LOGGING_START's data: {@code struct vfio_user_device_feature_dma_logging_control} and its ranges.
     *
     * @param pageSize bytes one bit of the log stands for, u64
     * @param ranges   the ranges to log; none means every DMA_MAP range (libvfio-user)
     */
    public record DmaLoggingControl(long pageSize, List<DmaRange> ranges) {
        public DmaLoggingControl {
            ranges = List.copyOf(ranges);
        }
    }

    /**
     * DMA_LOGGING_REPORT's request, echoed before the bitmap in the reply:
     * {@code struct vfio_user_device_feature_dma_logging_report}.
     *
     * @param iova     DMA address of the first byte reported, u64
     * @param length   bytes reported, u64
     * @param pageSize bytes one bit stands for, as given to DMA_LOGGING_START
     */
    public record DmaLoggingReport(long iova, long length, long pageSize) {
        /**
         * @return the bitmap's size in bytes: one bit per page of {@code length} (the last page may be partial), in
         *         whole u64 words (libvfio-user's {@code get_bitmap_size}); bit {@code i % 8} of byte {@code i / 8} is
         *         the page at {@code iova + i * pageSize}
         * @throws VfioUserProtocolException EINVAL for a zero length or page size, or a bitmap of 2^31 bytes or more
         */
        public long bitmapBytes() {
            if (length == 0 || pageSize == 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging report of " + Long.toUnsignedString(length)
                        + " bytes in pages of " + Long.toUnsignedString(pageSize));
            }
            long pages = Long.divideUnsigned(length, pageSize) + (Long.remainderUnsigned(length, pageSize) != 0 ? 1 : 0);
            long words = (pages >>> 6) + ((pages & 63) != 0 ? 1 : 0); // pages is u64
            if (words >= (1L << 28)) {
                throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging report of " + Long.toUnsignedString(pages)
                        + " pages: the bitmap would be 2 GiB or more");
            }
            return words * 8;
        }
    }

    public static byte[] encodeDmaLoggingControl(DmaLoggingControl c) {
        ByteBuffer b = ByteBuffer.allocate(DMA_LOGGING_CONTROL_SIZE + c.ranges().size() * DMA_LOGGING_RANGE_SIZE)
                .order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(c.pageSize()).putInt(c.ranges().size()).putInt(0);
        for (DmaRange r : c.ranges()) {
            b.putLong(r.iova()).putLong(r.length());
        }
        return b.array();
    }

    /**
     * @throws VfioUserProtocolException EINVAL unless {@code data} is the 16-byte struct followed by exactly
     *         num_ranges ranges, for a non-zero reserved field, or above {@value #MAX_DMA_LOGGING_RANGES} ranges
     */
    public static DmaLoggingControl decodeDmaLoggingControl(byte[] data) {
        ByteBuffer b = atLeast(data, DMA_LOGGING_CONTROL_SIZE, "struct vfio_user_device_feature_dma_logging_control");
        long pageSize = b.getLong();
        long count = Integer.toUnsignedLong(b.getInt());
        if (b.getInt() != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging control: reserved is not 0");
        }
        if (count > MAX_DMA_LOGGING_RANGES) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging control names " + count + " ranges, above "
                    + MAX_DMA_LOGGING_RANGES);
        }
        if (data.length != DMA_LOGGING_CONTROL_SIZE + count * DMA_LOGGING_RANGE_SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging control names " + count + " ranges in "
                    + (data.length - DMA_LOGGING_CONTROL_SIZE) + " bytes");
        }
        List<DmaRange> ranges = new ArrayList<>();
        for (long i = 0; i < count; i++) {
            ranges.add(new DmaRange(b.getLong(), b.getLong()));
        }
        return new DmaLoggingControl(pageSize, ranges);
    }

    /** @return the report struct followed by {@code bitmap} (empty in a request) */
    public static byte[] encodeDmaLoggingReport(DmaLoggingReport r, byte[] bitmap) {
        ByteBuffer b = ByteBuffer.allocate(DMA_LOGGING_REPORT_SIZE + bitmap.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(r.iova()).putLong(r.length()).putLong(r.pageSize()).put(bitmap);
        return b.array();
    }

    /** @throws VfioUserProtocolException EINVAL when {@code data} is shorter than the 24-byte struct */
    public static DmaLoggingReport decodeDmaLoggingReport(byte[] data) {
        ByteBuffer b = atLeast(data, DMA_LOGGING_REPORT_SIZE, "struct vfio_user_device_feature_dma_logging_report");
        return new DmaLoggingReport(b.getLong(), b.getLong(), b.getLong());
    }

    /** @return {@code data} to read little-endian; @throws VfioUserProtocolException EINVAL when shorter than {@code size} */
    private static ByteBuffer atLeast(byte[] data, int size, String struct) {
        if (data.length < size) {
            throw new VfioUserProtocolException(Errno.EINVAL, struct + " is " + data.length + " bytes, below " + size);
        }
        return ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    }

    public static void encode(Feature f, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE + f.data.length);
        vfio_user_device_feature.argsz(s, (int) f.argsz);
        vfio_user_device_feature.flags(s, f.flags);
        MemorySegment.copy(f.data, 0, s, JAVA_BYTE, vfio_user_device_feature.data$offset(), f.data.length);
    }

    /**
     * A request, as the kernel's {@code vfio_ioctl_device_feature} checks it.
     *
     * @throws VfioUserProtocolException EINVAL when truncated, when argsz is below 8 or below the bytes sent, for flag
     *         bits {@code <linux/vfio.h>} does not define, or for GET and SET together without PROBE
     */
    public static Feature decodeRequest(ByteBuf in) {
        Feature f = decode(in, "DEVICE_FEATURE request");
        if ((f.flags & ~KNOWN_FLAGS) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_FEATURE flags 0x" + Integer.toHexString(f.flags)
                    + " have bits <linux/vfio.h> does not define");
        }
        if (f.get() && f.set() && !f.probe()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_FEATURE GET and SET together without PROBE");
        }
        return f;
    }

    /** @throws VfioUserProtocolException EINVAL when truncated or argsz is below 8 or below the bytes sent */
    public static Feature decodeReply(ByteBuf in) {
        return decode(in, "DEVICE_FEATURE reply");
    }

    private static Feature decode(ByteBuf in, String what) {
        Payloads.atLeast(in, SIZE, what);
        MemorySegment s = Payloads.view(in);
        long argsz = Integer.toUnsignedLong(vfio_user_device_feature.argsz(s));
        int flags = vfio_user_device_feature.flags(s);
        int dataBytes = in.readableBytes() - SIZE;
        Payloads.argszAtLeast(argsz, SIZE + dataBytes, what); // below the bytes sent
        byte[] data = s.asSlice(SIZE, dataBytes).toArray(JAVA_BYTE);
        in.skipBytes(in.readableBytes());
        return new Feature(argsz, flags, data);
    }

    public static byte[] encodeMigrationInfo(MigrationInfo m) {
        byte[] b = new byte[MIGRATION_SIZE];
        vfio_device_feature_migration.flags(MemorySegment.ofArray(b), m.flags);
        return b;
    }

    /** @throws VfioUserProtocolException EINVAL unless {@code data} is exactly 8 bytes */
    public static MigrationInfo decodeMigrationInfo(byte[] data) {
        exactly(data, MIGRATION_SIZE, "struct vfio_device_feature_migration");
        return new MigrationInfo(vfio_device_feature_migration.flags(MemorySegment.ofArray(data)));
    }

    public static byte[] encodeMigState(MigState m) {
        byte[] b = new byte[MIG_STATE_SIZE];
        MemorySegment s = MemorySegment.ofArray(b);
        vfio_device_feature_mig_state.device_state(s, m.deviceState);
        vfio_device_feature_mig_state.data_fd(s, m.dataFd);
        return b;
    }

    /** @throws VfioUserProtocolException EINVAL unless {@code data} is exactly 8 bytes */
    public static MigState decodeMigState(byte[] data) {
        exactly(data, MIG_STATE_SIZE, "struct vfio_device_feature_mig_state");
        MemorySegment s = MemorySegment.ofArray(data);
        return new MigState(vfio_device_feature_mig_state.device_state(s), vfio_device_feature_mig_state.data_fd(s));
    }

    private static void exactly(byte[] data, int size, String what) {
        if (data.length != size) {
            throw new VfioUserProtocolException(Errno.EINVAL, what + " is " + data.length + " bytes, must be " + size);
        }
    }
}
