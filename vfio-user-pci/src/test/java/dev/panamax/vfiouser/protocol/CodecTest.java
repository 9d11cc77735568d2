package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.VfioRegionInfo.MsixMappable;
import dev.panamax.vfio.VfioRegionInfo.SparseMmap;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_info_cap_header;
import dev.panamax.vfio.bindings.vfio_region_info;
import dev.panamax.vfio.bindings.vfio_region_info_cap_type;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.function.Consumer;

import static dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec.Reply;
import static dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec.Request;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Round trips for every vfio-user message, and the errors a decoder must report. */
class CodecTest {
    private static final long XFER = VersionCodec.DEFAULT_MAX_DATA_XFER_SIZE;

    private static ByteBuf enc(Consumer<ByteBuf> encoder) {
        ByteBuf b = Unpooled.buffer();
        encoder.accept(b);
        return b;
    }

    private static ByteBuf bytes(int... values) {
        ByteBuf b = Unpooled.buffer();
        for (int v : values) {
            b.writeByte(v);
        }
        return b;
    }

    private static void fails(int errno, Executable decode) {
        VfioUserProtocolException e = assertThrows(VfioUserProtocolException.class, decode);
        assertEquals(errno, e.errno(), e.getMessage());
    }

    /** A copy of {@code b} with {@code n} bytes cut off the end, or one zero byte added when {@code n} is -1. */
    private static ByteBuf resized(ByteBuf b, int n) {
        ByteBuf c = b.copy(0, b.readableBytes() - Math.max(n, 0));
        if (n < 0) {
            c.writeByte(0);
        }
        return c;
    }

    // ---- VERSION ----

    @Test
    void versionWithAllCapabilities() {
        var caps = new VersionCodec.Capabilities(8, 65536L, 4096L | (2L << 20), 1024,
                new VersionCodec.Migration(4096, 1L << 28), true);
        var v = new VersionCodec.Version(0, 0, caps);
        ByteBuf b = enc(o -> VersionCodec.encode(v, o));
        assertEquals(0, b.getByte(b.readableBytes() - 1), "NUL-terminated");
        assertEquals(v, VersionCodec.decode(b));
    }

    @Test
    void versionWithoutDataAndWithEmptyCapabilities() {
        var bare = new VersionCodec.Version(1, 2, null);
        ByteBuf b = enc(o -> VersionCodec.encode(bare, o));
        assertEquals(4, b.readableBytes());
        assertEquals(bare, VersionCodec.decode(b));
        var none = new VersionCodec.Version(0, 0, VersionCodec.Capabilities.NONE);
        VersionCodec.Version d = VersionCodec.decode(enc(o -> VersionCodec.encode(none, o)));
        assertEquals(none, d);
        assertEquals(1, d.capabilities().effectiveMaxMsgFds());
        assertEquals(1 << 20, d.capabilities().effectiveMaxDataXferSize());
        assertEquals(4096, d.capabilities().effectivePgsizes());
        assertEquals(65535, d.capabilities().effectiveMaxDmaMaps());
        assertFalse(d.capabilities().effectiveWriteMultiple());
        assertNull(d.capabilities().migration());
    }

    @Test
    void versionParsesQemuStyleJson() {
        ByteBuf b = Unpooled.buffer();
        b.writeShortLE(0).writeShortLE(0);
        b.writeBytes(("{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,\"pgsizes\":4096,"
                + "\"max_dma_maps\":65535,\"migration\":{\"pgsize\":4096,\"max_bitmap_size\":268435456},"
                + "\"write_multiple\":true},\"unknown\":1}").getBytes(StandardCharsets.UTF_8));
        b.writeByte(0);
        var v = VersionCodec.decode(b);
        assertEquals(16, v.capabilities().maxMsgFds());
        assertEquals(268435456L, v.capabilities().migration().effectiveMaxBitmapSize());
        assertTrue(v.capabilities().effectiveWriteMultiple());
    }

    private static ByteBuf versionWith(String json, boolean nul) {
        ByteBuf b = Unpooled.buffer();
        b.writeShortLE(0).writeShortLE(0);
        b.writeBytes(json.getBytes(StandardCharsets.UTF_8));
        if (nul) {
            b.writeByte(0);
        }
        return b;
    }

    @Test
    void versionErrors() {
        fails(Errno.EINVAL, () -> VersionCodec.decode(bytes(0, 0, 0)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{}", false)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{not json", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("[1]", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":3}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"max_msg_fds\":\"8\"}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"max_msg_fds\":-1}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"max_msg_fds\":1.5}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"max_dma_maps\":4294967296}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"write_multiple\":1}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"migration\":{}}}", true)));
        fails(Errno.EINVAL, () -> VersionCodec.decode(versionWith("{\"capabilities\":{\"migration\":true}}", true)));
    }

    // ---- DMA_MAP / DMA_UNMAP ----

    @Test
    void dmaMap() {
        var r = new DmaMapCodec.Request(dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0x1000, 0x8000_0000L, 1L << 30);
        ByteBuf b = enc(o -> DmaMapCodec.encode(r, o));
        assertEquals(32, b.readableBytes());
        assertEquals(32, b.getIntLE(0));
        assertEquals(r, DmaMapCodec.decode(b.copy()));
        fails(Errno.EINVAL, () -> DmaMapCodec.decode(resized(b, 1)));
        fails(Errno.EINVAL, () -> DmaMapCodec.decode(resized(b, -1)));
        ByteBuf badArgsz = b.copy();
        badArgsz.setIntLE(0, 24);
        fails(Errno.EINVAL, () -> DmaMapCodec.decode(badArgsz));
        DmaMapCodec.checkFds(r, 1);
        fails(Errno.EINVAL, () -> DmaMapCodec.checkFds(r, 0));      // offset without fd
        fails(Errno.EINVAL, () -> DmaMapCodec.checkFds(r, 2));
        DmaMapCodec.checkFds(new DmaMapCodec.Request(dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ(), 0, 0x1000, 0x1000), 0);
        ByteBuf badFlags = b.copy();
        badFlags.setIntLE(4, 4);
        fails(Errno.EINVAL, () -> DmaMapCodec.decode(badFlags));
    }

    @Test
    void dmaUnmap() {
        var u = new DmaUnmapCodec.Unmap(0x8000_0000L, 0x20_0000L);
        ByteBuf b = enc(o -> DmaUnmapCodec.encode(u, o));
        assertEquals(24, b.readableBytes());
        assertEquals(u, DmaUnmapCodec.decode(b.copy()));
        var bigArgsz = new DmaUnmapCodec.Unmap(4096, 0, 1, 2);
        assertEquals(bigArgsz, DmaUnmapCodec.decode(enc(o -> DmaUnmapCodec.encode(bigArgsz, o))));
        fails(Errno.EINVAL, () -> DmaUnmapCodec.decode(resized(b, 8)));
        fails(Errno.EINVAL, () -> DmaUnmapCodec.decode(enc(o -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(16, 0, 1, 2), o))));
        fails(Errno.EINVAL, () -> DmaUnmapCodec.decode(enc(o -> DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(24, 1, 1, 2), o))));
    }

    // ---- DEVICE_GET_INFO / GET_IRQ_INFO ----

    @Test
    void deviceGetInfo() {
        var req = DeviceGetInfoCodec.DeviceInfo.request();
        assertEquals(req, DeviceGetInfoCodec.decodeRequest(enc(o -> DeviceGetInfoCodec.encode(req, o))));
        var reply = new DeviceGetInfoCodec.DeviceInfo(16,
                dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_PCI() | dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_RESET(), 9, 5);
        ByteBuf b = enc(o -> DeviceGetInfoCodec.encode(reply, o));
        assertEquals(reply, DeviceGetInfoCodec.decodeReply(b.copy()));
        fails(Errno.EINVAL, () -> DeviceGetInfoCodec.decodeRequest(b.copy()));   // fields set in a request
        fails(Errno.EINVAL, () -> DeviceGetInfoCodec.decodeReply(resized(b, 4)));
        fails(Errno.EINVAL, () -> DeviceGetInfoCodec.decodeReply(resized(b, -1)));
        fails(Errno.EINVAL, () -> DeviceGetInfoCodec.decodeReply(enc(o -> DeviceGetInfoCodec.encode(
                new DeviceGetInfoCodec.DeviceInfo(8, 0, 0, 0), o))));
    }

    @Test
    void deviceGetIrqInfo() {
        var req = DeviceGetIrqInfoCodec.IrqInfo.request(4);
        assertEquals(req, DeviceGetIrqInfoCodec.decodeRequest(enc(o -> DeviceGetIrqInfoCodec.encode(req, o))));
        var reply = new DeviceGetIrqInfoCodec.IrqInfo(16, dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_EVENTFD()
                | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_NORESIZE(), 4, 2048);
        ByteBuf b = enc(o -> DeviceGetIrqInfoCodec.encode(reply, o));
        assertEquals(reply, DeviceGetIrqInfoCodec.decodeReply(b.copy()));
        fails(Errno.EINVAL, () -> DeviceGetIrqInfoCodec.decodeRequest(b.copy()));
        fails(Errno.EINVAL, () -> DeviceGetIrqInfoCodec.decodeReply(resized(b, 1)));
        fails(Errno.EINVAL, () -> DeviceGetIrqInfoCodec.decodeReply(resized(b, -1)));
    }

    // ---- DEVICE_GET_REGION_INFO ----

    private static final int READ = vfio_h.VFIO_REGION_INFO_FLAG_READ();
    private static final int WRITE = vfio_h.VFIO_REGION_INFO_FLAG_WRITE();
    private static final int MMAP = vfio_h.VFIO_REGION_INFO_FLAG_MMAP();
    private static final int CAPS = vfio_h.VFIO_REGION_INFO_FLAG_CAPS();
    private static final int OFFSET_ARGSZ = (int) vfio_region_info.argsz$offset();
    private static final int OFFSET_FLAGS = (int) vfio_region_info.flags$offset();
    private static final int OFFSET_CAP_OFFSET = (int) vfio_region_info.cap_offset$offset();

    @Test
    void regionInfoRequest() {
        var r = new Request(4096, 2);
        ByteBuf b = enc(o -> DeviceGetRegionInfoCodec.encode(r, o));
        assertEquals(32, b.readableBytes());
        assertEquals(r, DeviceGetRegionInfoCodec.decodeRequest(b.copy()));
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeRequest(resized(b, 8)));
        ByteBuf flagged = b.copy();
        flagged.setIntLE(OFFSET_FLAGS, 1);
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeRequest(flagged));
        ByteBuf small = b.copy();
        small.setIntLE(OFFSET_ARGSZ, 16);
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeRequest(small));
    }

    @Test
    void regionInfoWithoutCapabilities() {
        var info = new VfioRegionInfo(7, READ | WRITE, 256, 0, List.of());
        ByteBuf b = enc(o -> DeviceGetRegionInfoCodec.encodeReply(info, 32, o));
        assertEquals(32, b.readableBytes());
        assertEquals(new Reply(32, info), DeviceGetRegionInfoCodec.decodeReply(b));
    }

    /** Every capability Panamax understands (sparse mmap, MSI-X mappable) is encoded and decoded. */
    @Test
    void regionInfoWithCapabilityChain() {
        var info = new VfioRegionInfo(0, READ | MMAP | CAPS, 0x4000, 0x10000, List.of(
                new SparseMmap(List.of(new Area(0, 0x1000), new Area(0x3000, 0x1000))),
                new MsixMappable(),
                new SparseMmap(List.of())));
        int size = DeviceGetRegionInfoCodec.replySize(info);
        assertEquals(32 + 48 + 8 + 16, size);
        ByteBuf b = enc(o -> DeviceGetRegionInfoCodec.encodeReply(info, size, o));
        assertEquals(size, b.readableBytes());
        assertEquals(32, b.getIntLE(OFFSET_CAP_OFFSET));
        assertEquals(vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), b.getShortLE(32));
        assertEquals(1, b.getShortLE(32 + 2), "version of the first capability");
        assertEquals(32 + 48, b.getIntLE(32 + 4), "next of the first capability");
        assertEquals(vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE(), b.getShortLE(32 + 48));
        assertEquals(32 + 48 + 8, b.getIntLE(32 + 48 + 4), "next of the second capability");
        assertEquals(0, b.getIntLE(32 + 48 + 8 + 4), "next of the last capability");
        assertEquals(new Reply(size, info), DeviceGetRegionInfoCodec.decodeReply(b.copy()));
        DeviceGetRegionInfoCodec.checkFds(info, 1);
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.checkFds(info, 0));
        DeviceGetRegionInfoCodec.checkFds(new VfioRegionInfo(1, READ, 8, 0, List.of()), 0);
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.checkFds(new VfioRegionInfo(1, READ, 8, 0, List.of()), 1));

        // The client's argsz is too small: only the struct comes, argsz says how much is needed.
        ByteBuf cut = enc(o -> DeviceGetRegionInfoCodec.encodeReply(info, size - 1, o));
        assertEquals(32, cut.readableBytes());
        Reply r = DeviceGetRegionInfoCodec.decodeReply(cut);
        assertEquals(size, r.argsz());
        assertTrue(r.info().capabilities().isEmpty());

        // Inconsistent replies.
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(resized(b, 8)));            // argsz > payload
        ByteBuf loop = b.copy();
        loop.setIntLE(32 + 4, 32);                                                                  // next points back
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(loop));
        ByteBuf outside = b.copy();
        outside.setIntLE(OFFSET_CAP_OFFSET, size);                                                  // cap past the end
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(outside));
        ByteBuf inside = b.copy();
        inside.setIntLE(OFFSET_CAP_OFFSET, 8);                                                      // cap inside the struct
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(inside));
        ByteBuf areas = b.copy();
        areas.setIntLE(32 + 8, 3);                                                                  // nr_areas too big
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(areas));
        ByteBuf noCaps = b.copy();
        noCaps.setIntLE(OFFSET_FLAGS, READ);                                                        // data but no FLAG_CAPS
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(noCaps));
        fails(Errno.EINVAL, () -> DeviceGetRegionInfoCodec.decodeReply(bytes(1, 2, 3)));
    }

    /**
     * Capabilities Panamax does not use ({@code VFIO_REGION_INFO_CAP_TYPE}, an unknown id) are skipped on decode, as
     * {@link VfioRegionInfo#parse} skips them in the kernel's answer; the chain goes on behind them.
     */
    @Test
    void regionInfoSkipsCapabilitiesItDoesNotUse() {
        // struct (32) | CAP_TYPE (16) | id 99 version 2 with 8 body bytes (16) | MSIX_MAPPABLE (8)
        int size = 32 + 16 + 16 + 8;
        ByteBuf b = Unpooled.buffer(size);
        b.writeZero(size);
        MemorySegment s = MemorySegment.ofArray(b.array()).asSlice(b.arrayOffset(), size);
        vfio_region_info.argsz(s, size);
        vfio_region_info.flags(s, READ | CAPS);
        vfio_region_info.index(s, 3);
        vfio_region_info.cap_offset(s, 32);
        vfio_region_info.size(s, 0x1000);
        MemorySegment type = s.asSlice(32);
        vfio_info_cap_header.id(type, (short) vfio_h.VFIO_REGION_INFO_CAP_TYPE());
        vfio_info_cap_header.version(type, (short) 1);
        vfio_info_cap_header.next(type, 48);
        vfio_region_info_cap_type.type(type, 0x8086);
        vfio_region_info_cap_type.subtype(type, 3);
        MemorySegment unknown = s.asSlice(48);
        vfio_info_cap_header.id(unknown, (short) 99);
        vfio_info_cap_header.version(unknown, (short) 2);
        vfio_info_cap_header.next(unknown, 64);
        unknown.asSlice(8, 8).fill((byte) 0x5a);
        vfio_info_cap_header.id(s.asSlice(64), (short) vfio_h.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE());
        vfio_info_cap_header.version(s.asSlice(64), (short) 1);
        assertEquals(new Reply(size, new VfioRegionInfo(3, READ | CAPS, 0x1000, 0, List.of(new MsixMappable()))),
                DeviceGetRegionInfoCodec.decodeReply(b));
    }

    // ---- DEVICE_GET_REGION_IO_FDS ----

    @Test
    void regionIoFds() {
        var req = new DeviceGetRegionIoFdsCodec.Request(1024, 0);
        ByteBuf rb = enc(o -> DeviceGetRegionIoFdsCodec.encode(req, o));
        assertEquals(req, DeviceGetRegionIoFdsCodec.decodeRequest(rb.copy()));
        ByteBuf withCount = rb.copy();
        withCount.setIntLE(12, 1);
        fails(Errno.EINVAL, () -> DeviceGetRegionIoFdsCodec.decodeRequest(withCount));

        var reply = DeviceGetRegionIoFdsCodec.Reply.of(0, List.of(
                new DeviceGetRegionIoFdsCodec.SubRegion(0x3000, 4, 0, dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD(), 1, 0xCAFE),
                new DeviceGetRegionIoFdsCodec.SubRegion(0x3004, 0, 1, dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_IO_FD_TYPE_IOREGIONFD(), 2, 42)));
        ByteBuf b = enc(o -> DeviceGetRegionIoFdsCodec.encodeReply(reply, 1024, o));
        assertEquals(16 + 80, b.readableBytes());
        var d = DeviceGetRegionIoFdsCodec.decodeReply(b.copy());
        assertEquals(reply, d);
        DeviceGetRegionIoFdsCodec.checkFds(d, 2);
        fails(Errno.EINVAL, () -> DeviceGetRegionIoFdsCodec.checkFds(d, 1));
        fails(Errno.EINVAL, () -> DeviceGetRegionIoFdsCodec.checkFds(d, 0));

        ByteBuf cut = enc(o -> DeviceGetRegionIoFdsCodec.encodeReply(reply, 16, o));
        var c = DeviceGetRegionIoFdsCodec.decodeReply(cut);
        assertEquals(96, c.argsz());
        assertEquals(2, c.count());
        assertTrue(c.subRegions().isEmpty());

        fails(Errno.EINVAL, () -> DeviceGetRegionIoFdsCodec.decodeReply(resized(b, 40)));
        fails(Errno.EINVAL, () -> DeviceGetRegionIoFdsCodec.decodeReply(resized(b, -1)));
    }

    // ---- DEVICE_SET_IRQS ----

    @Test
    void setIrqs() {
        var ev = new DeviceSetIrqsCodec.IrqSet(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()
                | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER(), 4, 0, 3, new byte[0]);
        ByteBuf eb = enc(o -> DeviceSetIrqsCodec.encode(ev, o));
        assertEquals(20, eb.readableBytes());
        var evd = DeviceSetIrqsCodec.decode(eb);
        assertEquals(ev.flags(), evd.flags());
        assertEquals(3, evd.count());
        DeviceSetIrqsCodec.checkFds(evd, 3);
        DeviceSetIrqsCodec.checkFds(evd, 0);
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.checkFds(evd, 2));

        var bool = new DeviceSetIrqsCodec.IrqSet(dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL()
                | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_MASK(), 2, 5, 3, new byte[] {1, 0, 1});
        ByteBuf bb = enc(o -> DeviceSetIrqsCodec.encode(bool, o));
        assertEquals(23, bb.getIntLE(0));
        var bd = DeviceSetIrqsCodec.decode(bb.copy());
        assertEquals(List.of(bool.flags(), bool.index(), bool.start(), bool.count()), List.of(bd.flags(), bd.index(), bd.start(), bd.count()));
        assertArrayEquals(bool.data(), bd.data());
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.checkFds(bd, 1));

        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.decode(resized(bb, 1)));                 // argsz != payload
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.decode(bytes(1, 2, 3)));
        ByteBuf twoData = bb.copy();
        twoData.setIntLE(4, dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE()
                | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_MASK());
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.decode(twoData));
        ByteBuf noAction = bb.copy();
        noAction.setIntLE(4, dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL());
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.decode(noAction));
        ByteBuf wrongCount = bb.copy();
        wrongCount.setIntLE(16, 4);
        fails(Errno.EINVAL, () -> DeviceSetIrqsCodec.decode(wrongCount));
    }

    // ---- REGION_READ / REGION_WRITE ----

    @Test
    void regionRead() {
        var req = new RegionReadCodec.Request(0x10, 2, 4);
        ByteBuf b = enc(o -> RegionReadCodec.encode(req, o));
        assertEquals(req, RegionReadCodec.decodeRequest(b.copy(), XFER));
        fails(Errno.E2BIG, () -> RegionReadCodec.decodeRequest(b.copy(), 3));
        fails(Errno.EINVAL, () -> RegionReadCodec.decodeRequest(resized(b, 1), XFER));

        var rep = new RegionReadCodec.Reply(0x10, 2, new byte[] {1, 2, 3, 4});
        ByteBuf rb = enc(o -> RegionReadCodec.encode(rep, o));
        var d = RegionReadCodec.decodeReply(rb.copy(), XFER);
        assertEquals(List.of(rep.offset(), rep.region()), List.of(d.offset(), d.region()));
        assertArrayEquals(rep.data(), d.data());
        fails(Errno.EINVAL, () -> RegionReadCodec.decodeReply(resized(rb, 1), XFER));
        fails(Errno.EINVAL, () -> RegionReadCodec.decodeReply(resized(rb, -1), XFER));
        fails(Errno.E2BIG, () -> RegionReadCodec.decodeReply(rb.copy(), 2));
    }

    @Test
    void regionWrite() {
        var req = new RegionWriteCodec.Request(0x20, 0, new byte[] {9, 8});
        ByteBuf b = enc(o -> RegionWriteCodec.encode(req, o));
        assertEquals(18, b.readableBytes());
        var d = RegionWriteCodec.decodeRequest(b.copy(), XFER);
        assertEquals(0x20, d.offset());
        assertArrayEquals(new byte[] {9, 8}, d.data());
        fails(Errno.EINVAL, () -> RegionWriteCodec.decodeRequest(resized(b, 1), XFER));
        fails(Errno.EINVAL, () -> RegionWriteCodec.decodeRequest(resized(b, -1), XFER));
        fails(Errno.E2BIG, () -> RegionWriteCodec.decodeRequest(b.copy(), 1));

        var rep = new RegionWriteCodec.Reply(0x20, 0, 2);
        ByteBuf rb = enc(o -> RegionWriteCodec.encode(rep, o));
        assertEquals(rep, RegionWriteCodec.decodeReply(rb.copy()));
        fails(Errno.EINVAL, () -> RegionWriteCodec.decodeReply(resized(rb, -1)));
    }

    // ---- DMA_READ / DMA_WRITE ----

    @Test
    void dmaRead() {
        var req = new DmaReadCodec.Request(0x8000_1000L, 3);
        ByteBuf b = enc(o -> DmaReadCodec.encode(req, o));
        assertEquals(16, b.readableBytes());
        assertEquals(req, DmaReadCodec.decodeRequest(b.copy(), XFER));
        fails(Errno.E2BIG, () -> DmaReadCodec.decodeRequest(b.copy(), 2));
        ByteBuf huge = b.copy();
        huge.setLongLE(8, -1L);
        fails(Errno.E2BIG, () -> DmaReadCodec.decodeRequest(huge, XFER));

        var rep = new DmaReadCodec.Reply(0x8000_1000L, new byte[] {5, 6, 7});
        ByteBuf rb = enc(o -> DmaReadCodec.encode(rep, o));
        assertEquals(3, rb.getLongLE(8), "count is 8 bytes (spec, not QEMU's u32)");
        var d = DmaReadCodec.decodeReply(rb.copy(), XFER);
        assertArrayEquals(rep.data(), d.data());
        fails(Errno.EINVAL, () -> DmaReadCodec.decodeReply(resized(rb, 1), XFER));
    }

    @Test
    void dmaWrite() {
        var req = new DmaWriteCodec.Request(0x9000, new byte[] {1, 2, 3, 4, 5});
        ByteBuf b = enc(o -> DmaWriteCodec.encode(req, o));
        assertEquals(21, b.readableBytes());
        var d = DmaWriteCodec.decodeRequest(b.copy(), XFER);
        assertEquals(0x9000, d.address());
        assertArrayEquals(req.data(), d.data());
        fails(Errno.EINVAL, () -> DmaWriteCodec.decodeRequest(resized(b, 2), XFER));
        fails(Errno.E2BIG, () -> DmaWriteCodec.decodeRequest(b.copy(), 4));

        var rep = new DmaWriteCodec.Reply(0x9000, 5);
        ByteBuf rb = enc(o -> DmaWriteCodec.encode(rep, o));
        assertEquals(12, rb.readableBytes());
        assertEquals(rep, DmaWriteCodec.decodeReply(rb.copy()));
        fails(Errno.EINVAL, () -> DmaWriteCodec.decodeReply(resized(rb, -1)));
    }

    // ---- DEVICE_RESET and empty replies ----

    @Test
    void deviceResetAndEmptyReplies() {
        DeviceResetCodec.decode(Unpooled.EMPTY_BUFFER);
        fails(Errno.EINVAL, () -> DeviceResetCodec.decode(bytes(0)));
        DeviceResetCodec.decodeEmpty(Unpooled.EMPTY_BUFFER, VfioUserCommand.DMA_MAP);
        fails(Errno.EINVAL, () -> DeviceResetCodec.decodeEmpty(bytes(1, 2), VfioUserCommand.DEVICE_SET_IRQS));
    }

    // ---- REGION_WRITE_MULTI ----

    @Test
    void regionWriteMulti() {
        var writes = List.of(new RegionWriteMultiCodec.Write(0x10, 0, new byte[] {1}),
                new RegionWriteMultiCodec.Write(0x18, 2, new byte[] {1, 2, 3, 4, 5, 6, 7, 8}));
        ByteBuf b = enc(o -> RegionWriteMultiCodec.encode(writes, o));
        assertEquals(8 + 48, b.readableBytes());
        var d = RegionWriteMultiCodec.decodeRequest(b.copy());
        assertEquals(2, d.size());
        for (int i = 0; i < 2; i++) {
            assertEquals(writes.get(i).offset(), d.get(i).offset());
            assertEquals(writes.get(i).region(), d.get(i).region());
            assertArrayEquals(writes.get(i).data(), d.get(i).data());
        }
        assertEquals(2, RegionWriteMultiCodec.decodeReply(enc(o -> RegionWriteMultiCodec.encodeReply(2, o))));

        fails(Errno.EINVAL, () -> RegionWriteMultiCodec.decodeRequest(resized(b, 24)));          // wr_cnt 2, one write
        ByteBuf zero = b.copy();
        zero.setLongLE(0, 0);
        fails(Errno.EINVAL, () -> RegionWriteMultiCodec.decodeRequest(zero));
        ByteBuf many = b.copy();
        many.setLongLE(0, 201);
        fails(Errno.EINVAL, () -> RegionWriteMultiCodec.decodeRequest(many));
        ByteBuf nine = b.copy();
        nine.setIntLE(8 + 12, 9);
        fails(Errno.EINVAL, () -> RegionWriteMultiCodec.decodeRequest(nine));
        fails(Errno.EINVAL, () -> RegionWriteMultiCodec.decodeReply(bytes(1, 2, 3, 4)));
        assertThrows(VfioUserProtocolException.class, () -> new RegionWriteMultiCodec.Write(0, 0, new byte[9]));
    }

    @Test
    void fdRulesPerCommand() {
        assertEquals(1, VfioUserCommand.DMA_MAP.maxFds(false));
        assertEquals(0, VfioUserCommand.DMA_MAP.maxFds(true));
        assertEquals(1, VfioUserCommand.DEVICE_GET_REGION_INFO.maxFds(true));
        assertEquals(0, VfioUserCommand.DEVICE_GET_REGION_INFO.maxFds(false));
        assertEquals(Integer.MAX_VALUE, VfioUserCommand.DEVICE_SET_IRQS.maxFds(false));
        assertEquals(Integer.MAX_VALUE, VfioUserCommand.DEVICE_GET_REGION_IO_FDS.maxFds(true));
        for (VfioUserCommand c : List.of(VfioUserCommand.VERSION, VfioUserCommand.REGION_READ, VfioUserCommand.REGION_WRITE,
                VfioUserCommand.DMA_READ, VfioUserCommand.DMA_WRITE, VfioUserCommand.DEVICE_RESET, VfioUserCommand.DMA_UNMAP,
                VfioUserCommand.DEVICE_GET_INFO, VfioUserCommand.DEVICE_GET_IRQ_INFO, VfioUserCommand.REGION_WRITE_MULTI)) {
            assertEquals(0, c.maxFds(false), c.name());
            assertEquals(0, c.maxFds(true), c.name());
        }
        assertFalse(VfioUserCommand.DMA_READ.fromClient());
        assertTrue(VfioUserCommand.REGION_READ.fromClient());
    }
}
