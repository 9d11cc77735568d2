package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.ByteOrder;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;
import static dev.panamax.vfio.VfioDeviceMigState.*;
import static org.junit.jupiter.api.Assertions.*;

/** DEVICE_FEATURE and MIG_DATA codecs, the state a MIG_DEVICE_STATE carries and the VERSION migration capability. */
class MigrationCodecTest {
    static final int GET = VFIO_DEVICE_FEATURE_GET();
    static final int SET = VFIO_DEVICE_FEATURE_SET();
    static final int PROBE = VFIO_DEVICE_FEATURE_PROBE();

    static ByteBuf le(int... words) {
        ByteBuf b = Unpooled.buffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int w : words) {
            b.writeIntLE(w);
        }
        return b;
    }

    static int errno(Runnable r) {
        return assertThrows(VfioUserProtocolException.class, r::run).errno();
    }

    // ---- DMA logging ----

    @Test
    void dmaLoggingControlRoundTripsEveryField() {
        var c = new DeviceFeatureCodec.DmaLoggingControl(1L << 63, java.util.List.of(
                new DeviceFeatureCodec.DmaRange(0x1000, -1L), new DeviceFeatureCodec.DmaRange(-4096L, 4096)));
        byte[] b = DeviceFeatureCodec.encodeDmaLoggingControl(c);
        assertEquals(16 + 2 * 16, b.length);
        java.nio.ByteBuffer w = java.nio.ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(1L << 63, w.getLong(0));
        assertEquals(2, w.getInt(8));
        assertEquals(0, w.getInt(12));
        assertEquals(0x1000, w.getLong(16));
        assertEquals(-1L, w.getLong(24));
        assertEquals(-4096L, w.getLong(32));
        assertEquals(c, DeviceFeatureCodec.decodeDmaLoggingControl(b));
        var none = new DeviceFeatureCodec.DmaLoggingControl(4096, java.util.List.of());
        assertEquals(none, DeviceFeatureCodec.decodeDmaLoggingControl(DeviceFeatureCodec.encodeDmaLoggingControl(none)));
    }

    @Test
    void dmaLoggingControlThatLiesIsRefused() {
        byte[] one = DeviceFeatureCodec.encodeDmaLoggingControl(new DeviceFeatureCodec.DmaLoggingControl(4096,
                java.util.List.of(new DeviceFeatureCodec.DmaRange(0, 4096))));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(new byte[15])), "short");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(java.util.Arrays.copyOf(one, 31))), "range cut");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(java.util.Arrays.copyOf(one, 48))), "bytes past num_ranges");
        byte[] reserved = one.clone();
        reserved[12] = 1;
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(reserved)), "reserved not 0");
        byte[] huge = one.clone();
        java.nio.ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putInt(8, -1);
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(huge)), "2^32-1 ranges");
        byte[] tooMany = DeviceFeatureCodec.encodeDmaLoggingControl(new DeviceFeatureCodec.DmaLoggingControl(4096,
                java.util.Collections.nCopies(DeviceFeatureCodec.MAX_DMA_LOGGING_RANGES + 1, new DeviceFeatureCodec.DmaRange(0, 4096))));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingControl(tooMany)), "above the bound");
    }

    @Test
    void dmaLoggingReportRoundTripsAndSizesItsBitmap() {
        var r = new DeviceFeatureCodec.DmaLoggingReport(-8192L, 0x3000, 4096);
        byte[] b = DeviceFeatureCodec.encodeDmaLoggingReport(r, new byte[]{5, 6});
        assertEquals(26, b.length);
        java.nio.ByteBuffer w = java.nio.ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(-8192L, w.getLong(0));
        assertEquals(0x3000, w.getLong(8));
        assertEquals(4096, w.getLong(16));
        assertEquals(5, b[24]);
        assertEquals(r, DeviceFeatureCodec.decodeDmaLoggingReport(b));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeDmaLoggingReport(new byte[23])));
        // libvfio-user's get_bitmap_size: whole u64 words, a partial last page counted.
        assertEquals(8, new DeviceFeatureCodec.DmaLoggingReport(0, 1, 4096).bitmapBytes());
        assertEquals(8, new DeviceFeatureCodec.DmaLoggingReport(0, 64 * 4096, 4096).bitmapBytes());
        assertEquals(16, new DeviceFeatureCodec.DmaLoggingReport(0, 64 * 4096 + 1, 4096).bitmapBytes());
        assertEquals(16384, new DeviceFeatureCodec.DmaLoggingReport(0, 512L << 20, 4096).bitmapBytes());
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.DmaLoggingReport(0, 0, 4096).bitmapBytes()));
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.DmaLoggingReport(0, 4096, 0).bitmapBytes()));
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.DmaLoggingReport(0, -1L, 1).bitmapBytes()), "2^64 pages");
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.DmaLoggingReport(0, 1L << 46, 4096).bitmapBytes()), "a 2 GiB bitmap");
    }

    /** The sizes and feature numbers, against gcc's reading of the test header (libvfio-user's structs) and {@code <linux/vfio.h>}. */
    @Test
    void dmaLoggingLayoutsAreTheCHeaders() throws Exception {
        java.nio.file.Path includeDir = java.nio.file.Path.of(MigrationCodecTest.class.getResource("/vfio-user.h").toURI()).getParent();
        java.util.Map<String, Long> c = dev.panamax.core.bindings.BindingsGenerator.runC("""
                #include <stddef.h>
                #include <stdio.h>
                #include <vfio-user.h>
                #define P(k, v) printf("%s %llu\\n", k, (unsigned long long) (v))
                int main(void) {
                  P("control", sizeof(struct vfio_user_device_feature_dma_logging_control));
                  P("control.num_ranges", offsetof(struct vfio_user_device_feature_dma_logging_control, num_ranges));
                  P("control.ranges", offsetof(struct vfio_user_device_feature_dma_logging_control, ranges));
                  P("range", sizeof(struct vfio_user_device_feature_dma_logging_range));
                  P("report", sizeof(struct vfio_user_device_feature_dma_logging_report));
                  P("report.bitmap", offsetof(struct vfio_user_device_feature_dma_logging_report, bitmap));
                  P("start", VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
                  P("stop", VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
                  P("report#", VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT);
                  return 0;
                }
                """, includeDir);
        assertEquals((long) DeviceFeatureCodec.DMA_LOGGING_CONTROL_SIZE, c.get("control"));
        assertEquals(8L, c.get("control.num_ranges"));
        assertEquals((long) DeviceFeatureCodec.DMA_LOGGING_CONTROL_SIZE, c.get("control.ranges"));
        assertEquals((long) DeviceFeatureCodec.DMA_LOGGING_RANGE_SIZE, c.get("range"));
        assertEquals((long) DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE, c.get("report"));
        assertEquals((long) DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE, c.get("report.bitmap"));
        assertEquals((long) DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, c.get("start"));
        assertEquals((long) DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, c.get("stop"));
        assertEquals((long) DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, c.get("report#"));
    }

    // ---- DEVICE_FEATURE ----

    @Test
    void featureRoundTripsEveryField() {
        byte[] state = DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(RESUMING.code(), -1));
        ByteBuf b = Unpooled.buffer();
        DeviceFeatureCodec.encode(DeviceFeatureCodec.Feature.of(SET | 2, state), b);
        assertEquals(16, b.readableBytes());
        assertEquals(16, b.getIntLE(0));
        assertEquals(SET | 2, b.getIntLE(4));
        assertEquals(4, b.getIntLE(8));
        assertEquals(-1, b.getIntLE(12));
        DeviceFeatureCodec.Feature f = DeviceFeatureCodec.decodeRequest(b);
        assertEquals(16, f.argsz());
        assertEquals(2, f.feature());
        assertTrue(f.set());
        assertFalse(f.get());
        assertFalse(f.probe());
        assertEquals(new DeviceFeatureCodec.MigState(4, -1), DeviceFeatureCodec.decodeMigState(f.data()));
        assertFalse(b.isReadable());
        byte[] mig = DeviceFeatureCodec.encodeMigrationInfo(new DeviceFeatureCodec.MigrationInfo(0x8000_0000_0000_0001L));
        assertEquals(0x8000_0000_0000_0001L, DeviceFeatureCodec.decodeMigrationInfo(mig).flags());
    }

    @Test
    void getRequestMayOfferRoomWithoutData() {
        DeviceFeatureCodec.Feature f = DeviceFeatureCodec.decodeRequest(le(16, GET | 1));
        assertEquals(16, f.argsz());
        assertEquals(0, f.data().length);
        assertTrue(f.get());
    }

    @Test
    void argszIsUnsigned() {
        // argsz 0xFFFFFFFF: a u32 near 2^32, larger than anything sent, read as 4294967295 and not -1.
        DeviceFeatureCodec.Feature f = DeviceFeatureCodec.decodeRequest(le(0xFFFF_FFFF, GET | 2));
        assertEquals(0xFFFF_FFFFL, f.argsz());
    }

    @Test
    void malformedFeatureRequestsAreRefused() {
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(Unpooled.buffer())));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(8).writeShortLE(0))));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(7, GET | 1))), "argsz below 8");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(12, SET | 2, 1, -1))), "argsz lies: below the 16 bytes sent");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(16, 1 << 19 | 1))), "unknown flag bit");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(16, 0x8000_0000 | 1))), "top flag bit");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeRequest(le(16, GET | SET | 2))), "GET and SET");
        DeviceFeatureCodec.decodeRequest(le(8, GET | SET | PROBE | 2)); // with PROBE both may be asked
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeReply(le(4, GET | 2, 1, 1))), "reply argsz lies");
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeMigState(new byte[7])));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeMigState(new byte[9])));
        assertEquals(Errno.EINVAL, errno(() -> DeviceFeatureCodec.decodeMigrationInfo(new byte[0])));
    }

    // ---- MIG_DATA ----

    @Test
    void migDataRoundTrips() {
        ByteBuf b = Unpooled.buffer();
        MigDataCodec.encode(MigDataCodec.ReadRequest.of(4096), b);
        assertEquals(8, b.readableBytes());
        assertEquals(8 + 4096, b.getIntLE(0));
        assertEquals(4096, b.getIntLE(4));
        assertEquals(new MigDataCodec.ReadRequest(8 + 4096, 4096), MigDataCodec.decodeReadRequest(b, 1 << 20));
        ByteBuf d = Unpooled.buffer();
        MigDataCodec.encode(MigDataCodec.Data.of(new byte[]{1, 2, 3}), d);
        assertEquals(11, d.getIntLE(0));
        assertEquals(3, d.getIntLE(4));
        MigDataCodec.Data back = MigDataCodec.decodeData(d, 1 << 20, "t");
        assertArrayEquals(new byte[]{1, 2, 3}, back.data());
        assertEquals(11, back.argsz());
        assertFalse(d.isReadable());
        ByteBuf empty = Unpooled.buffer();
        MigDataCodec.encode(MigDataCodec.Data.of(new byte[0]), empty);
        assertEquals(0, MigDataCodec.decodeData(empty, 4096, "t").data().length, "end of data");
    }

    @Test
    void malformedMigDataIsRefused() {
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeReadRequest(le(8), 4096)), "truncated");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeReadRequest(le(16, 8, 0), 4096)), "too long");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeReadRequest(le(15, 8), 4096)), "argsz below 8 + size");
        assertEquals(Errno.E2BIG, errno(() -> MigDataCodec.decodeReadRequest(le(8 + 4097, 4097), 4096)));
        assertEquals(Errno.E2BIG, errno(() -> MigDataCodec.decodeReadRequest(le(-1, -1), 4096)), "size 2^32-1 unsigned");
        // argsz 2^32-1 with size 2^32-9: 8 + size fits u32 only unsigned; still above max_data_xfer_size.
        assertEquals(Errno.E2BIG, errno(() -> MigDataCodec.decodeReadRequest(le(-1, -9), 1L << 20)));
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(8), 4096, "t")), "truncated");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(12, 4, 1).writeByte(0), 4096, "t")), "size lies: 5 bytes sent");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(12, 8, 1), 4096, "t")), "size lies: 4 bytes sent");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(13, 4, 1), 4096, "t")), "argsz lies");
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(4, 4, 1), 4096, "t")), "argsz below 8");
        assertEquals(Errno.E2BIG, errno(() -> MigDataCodec.decodeData(le(-1, -9, 1), 4096, "t")), "size near 2^32");
        assertEquals(Errno.E2BIG, errno(() -> MigDataCodec.decodeData(le(12, 4, 1), 3, "t")), "above max_data_xfer_size");
        // A max_data_xfer_size near 2^64 does not make a u32 size negative or unbounded.
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeData(le(-1, -9, 1), Long.MAX_VALUE, "t")));
        assertEquals(Errno.EINVAL, errno(() -> MigDataCodec.decodeReadRequest(le(7, -1), Long.MAX_VALUE)), "argsz below 8 + 2^32-1");
    }

    // ---- the state in MIG_DEVICE_STATE (the enum's arcs: vfio-pci's VfioDeviceMigStateTest) ----

    @Test
    void migStateNamesTheEnumOrIsEinval() {
        assertEquals(STOP_COPY, new DeviceFeatureCodec.MigState(3, -1).state());
        assertEquals(PRE_COPY, new DeviceFeatureCodec.MigState(6, -1).state());
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.MigState(8, -1).state()));
        assertEquals(Errno.EINVAL, errno(() -> new DeviceFeatureCodec.MigState(-1, -1).state()));
        var e = assertThrows(VfioUserProtocolException.class, () -> new DeviceFeatureCodec.MigState(8, -1).state());
        assertTrue(e.getMessage().contains("device_state 8 is no enum vfio_device_mig_state value"), e.getMessage());
    }

    // ---- VERSION's migration capability ----

    @Test
    void versionMigrationCapabilityRoundTrips() {
        VersionCodec.Capabilities c = new VersionCodec.Capabilities(null, null, null, null,
                new VersionCodec.Migration(4096, 1L << 30), null);
        ByteBuf b = Unpooled.buffer();
        VersionCodec.encode(new VersionCodec.Version(0, 0, c), b);
        VersionCodec.Migration m = VersionCodec.decode(b).capabilities().migration();
        assertEquals(4096, m.pgsize());
        assertEquals(1L << 30, m.effectiveMaxBitmapSize());
        ByteBuf d = Unpooled.buffer();
        VersionCodec.encode(new VersionCodec.Version(0, 0, new VersionCodec.Capabilities(null, null, null, null,
                new VersionCodec.Migration(4096, null), null)), d);
        assertEquals(VersionCodec.DEFAULT_MAX_BITMAP_SIZE, VersionCodec.decode(d).capabilities().migration().effectiveMaxBitmapSize());
    }

    @Test
    void badVersionMigrationCapabilitiesAreRefused() {
        for (String json : new String[]{"{\"capabilities\":{\"migration\":1}}", "{\"capabilities\":{\"migration\":{}}}",
                "{\"capabilities\":{\"migration\":{\"pgsize\":-1}}}", "{\"capabilities\":{\"migration\":{\"pgsize\":\"4k\"}}}",
                "{\"capabilities\":{\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":18446744073709551615}}}"}) {
            ByteBuf b = Unpooled.buffer().writeShortLE(0).writeShortLE(0);
            b.writeBytes(json.getBytes()).writeByte(0);
            assertEquals(Errno.EINVAL, errno(() -> VersionCodec.decode(b)), json);
        }
    }
}
