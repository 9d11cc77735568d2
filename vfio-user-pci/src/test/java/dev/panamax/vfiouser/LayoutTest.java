package dev.panamax.vfiouser;

import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_device_info;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_info_cap_header;
import dev.panamax.vfio.bindings.vfio_iommu_type1_dma_map;
import dev.panamax.vfio.bindings.vfio_iommu_type1_dma_unmap;
import dev.panamax.vfio.bindings.vfio_irq_info;
import dev.panamax.vfio.bindings.vfio_irq_set;
import dev.panamax.vfio.bindings.vfio_region_info;
import dev.panamax.vfio.bindings.vfio_region_info_cap_sparse_mmap;
import dev.panamax.vfio.bindings.vfio_region_sparse_mmap_area;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.DmaUnmapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserHeader;
import dev.panamax.vfiouser.transport.SocketLibc;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Compares the socket structs and constants of {@link SocketLibc} with what gcc computes from {@code sys/socket.h},
 * {@code sys/un.h} and {@code poll.h}; and checks, with distinct marker values, that each codec writes each field
 * where the generated binding puts it. The bindings themselves are checked against gcc by vfio-pci's
 * {@code VfioLayoutTest} ({@code <linux/vfio.h>}: every struct size, offset and {@code VFIO_*} constant) and by
 * {@link dev.panamax.vfiouser.bindings.VfioUserLayoutTest} (vfio-user.h). Fails (does not skip) when gcc is missing.
 */
class LayoutTest {
    private static final String PROGRAM = """
            #include <stdio.h>
            #include <stddef.h>
            #include <poll.h>
            #include <sys/socket.h>
            #include <sys/un.h>
            #define P(name, v) printf("%s %ld\\n", name, (long)(v))
            #define OFF(s, f) P(#s "." #f, offsetof(struct s, f))
            #define SZ(s) P("sizeof " #s, sizeof(struct s))
            int main(void) {
                SZ(sockaddr_un); OFF(sockaddr_un, sun_family); OFF(sockaddr_un, sun_path);
                P("sizeof sun_path", sizeof(((struct sockaddr_un *)0)->sun_path));
                SZ(iovec); OFF(iovec, iov_base); OFF(iovec, iov_len);
                SZ(msghdr); OFF(msghdr, msg_name); OFF(msghdr, msg_namelen); OFF(msghdr, msg_iov);
                OFF(msghdr, msg_iovlen); OFF(msghdr, msg_control); OFF(msghdr, msg_controllen); OFF(msghdr, msg_flags);
                SZ(cmsghdr); OFF(cmsghdr, cmsg_len); OFF(cmsghdr, cmsg_level); OFF(cmsghdr, cmsg_type);
                P("CMSG_DATA offset", (char *)CMSG_DATA((struct cmsghdr *)0) - (char *)0);
                SZ(pollfd); OFF(pollfd, fd); OFF(pollfd, events); OFF(pollfd, revents);
                for (int n = 0; n <= 253; n++) {
                    printf("CMSG_SPACE %d %ld\\n", n, (long)CMSG_SPACE(n * sizeof(int)));
                    printf("CMSG_LEN %d %ld\\n", n, (long)CMSG_LEN(n * sizeof(int)));
                }
                P("AF_UNIX", AF_UNIX); P("SOCK_STREAM", SOCK_STREAM); P("SOCK_CLOEXEC", SOCK_CLOEXEC);
                P("SOL_SOCKET", SOL_SOCKET); P("SCM_RIGHTS", SCM_RIGHTS); P("MSG_CTRUNC", MSG_CTRUNC);
                P("MSG_TRUNC", MSG_TRUNC); P("MSG_DONTWAIT", MSG_DONTWAIT); P("MSG_NOSIGNAL", MSG_NOSIGNAL);
                P("MSG_CMSG_CLOEXEC", MSG_CMSG_CLOEXEC); P("SHUT_RDWR", SHUT_RDWR);
                P("POLLIN", POLLIN); P("POLLOUT", POLLOUT); P("POLLERR", POLLERR); P("POLLHUP", POLLHUP); P("POLLNVAL", POLLNVAL);
                return 0;
            }
            """;

    private static Map<String, Long> c;

    @BeforeAll
    static void compileAndRun(@TempDir Path dir) throws IOException, InterruptedException {
        Path src = dir.resolve("layout.c");
        Path exe = dir.resolve("layout");
        Files.writeString(src, PROGRAM);
        Process gcc = new ProcessBuilder("gcc", "-O0", "-o", exe.toString(), src.toString()).redirectErrorStream(true).start();
        String gccOut = new String(gcc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(gcc.waitFor(60, TimeUnit.SECONDS), "gcc timed out");
        assertEquals(0, gcc.exitValue(), "gcc failed: " + gccOut);
        Process run = new ProcessBuilder(exe.toString()).redirectErrorStream(true).start();
        List<String> lines = new String(run.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
        assertTrue(run.waitFor(30, TimeUnit.SECONDS));
        assertEquals(0, run.exitValue());
        c = new HashMap<>();
        for (String line : lines) {
            int sp = line.lastIndexOf(' ');
            c.put(line.substring(0, sp), Long.parseLong(line.substring(sp + 1)));
        }
    }

    private static void same(String name, long java) {
        assertTrue(c.containsKey(name), "gcc printed no " + name);
        assertEquals(c.get(name), java, name);
    }

    /** Offset in the encoded payload of the first byte equal to {@code marker}. */
    private static int offsetOf(ByteBuf b, int marker) {
        for (int i = 0; i < b.readableBytes(); i++) {
            if ((b.getByte(i) & 0xFF) == marker) {
                return i;
            }
        }
        throw new AssertionError("marker " + marker + " not found");
    }

    /** The payload structs are {@code <linux/vfio.h>}'s: the codecs' sizes are the bindings'. */
    @Test
    void payloadSizesAreTheVfioHStructs() {
        assertEquals(vfio_region_info.sizeof(), DeviceGetRegionInfoCodec.SIZE);
        assertEquals(vfio_irq_info.sizeof(), DeviceGetIrqInfoCodec.SIZE);
        assertEquals(vfio_irq_set.sizeof(), DeviceSetIrqsCodec.SIZE);
        assertEquals(vfio_iommu_type1_dma_map.sizeof(), DmaMapCodec.SIZE);
        assertEquals(vfio_iommu_type1_dma_unmap.sizeof(), DmaUnmapCodec.SIZE);
        // vfio-user's DMA_MAP flags are the type1 IOMMU's.
        assertEquals(vfio_h.VFIO_DMA_MAP_FLAG_READ(), vfio_user_h.VFIO_USER_F_DMA_REGION_READ());
        assertEquals(vfio_h.VFIO_DMA_MAP_FLAG_WRITE(), vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE());
    }

    @Test
    void regionInfoFieldsWhereVfioHPutsThem() {
        ByteBuf b = Unpooled.buffer();
        DeviceGetRegionInfoCodec.encodeReply(new VfioRegionInfo(0xA2, 0xA1, 0xA3, 0xA4,
                List.of(new VfioRegionInfo.SparseMmap(List.of(new VfioRegionInfo.Area(0xA5, 0xA6))))), 4096, b);
        assertEquals(vfio_region_info.index$offset(), offsetOf(b, 0xA2));
        assertEquals(vfio_region_info.size$offset(), offsetOf(b, 0xA3));
        assertEquals(vfio_region_info.offset$offset(), offsetOf(b, 0xA4));
        assertEquals(0xA1 | vfio_h.VFIO_REGION_INFO_FLAG_CAPS(), b.getIntLE((int) vfio_region_info.flags$offset()));
        assertEquals(b.readableBytes(), b.getIntLE((int) vfio_region_info.argsz$offset()));
        int cap = b.getIntLE((int) vfio_region_info.cap_offset$offset());
        assertEquals(vfio_region_info.sizeof(), cap);
        assertEquals(vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP(), b.getShortLE(cap + (int) vfio_info_cap_header.id$offset()));
        assertEquals(1, b.getIntLE(cap + (int) vfio_region_info_cap_sparse_mmap.nr_areas$offset()));
        int area = cap + (int) vfio_region_info_cap_sparse_mmap.areas$offset();
        assertEquals(area + vfio_region_sparse_mmap_area.offset$offset(), offsetOf(b, 0xA5));
        assertEquals(area + vfio_region_sparse_mmap_area.size$offset(), offsetOf(b, 0xA6));
    }

    @Test
    void deviceInfoFieldsWhereVfioHPutsThem() {
        ByteBuf b = Unpooled.buffer();
        DeviceGetInfoCodec.encode(new DeviceGetInfoCodec.DeviceInfo(0xB0, 0xB1, 0xB2, 0xB3), b);
        assertEquals(vfio_device_info.argsz$offset(), offsetOf(b, 0xB0));
        assertEquals(vfio_device_info.flags$offset(), offsetOf(b, 0xB1));
        assertEquals(vfio_device_info.num_regions$offset(), offsetOf(b, 0xB2));
        assertEquals(vfio_device_info.num_irqs$offset(), offsetOf(b, 0xB3));
    }

    @Test
    void irqInfoAndIrqSetFieldsWhereVfioHPutsThem() {
        ByteBuf b = Unpooled.buffer();
        DeviceGetIrqInfoCodec.encode(new DeviceGetIrqInfoCodec.IrqInfo(0xC0, 0xC1, 0xC2, 0xC3), b);
        assertEquals(vfio_irq_info.argsz$offset(), offsetOf(b, 0xC0));
        assertEquals(vfio_irq_info.flags$offset(), offsetOf(b, 0xC1));
        assertEquals(vfio_irq_info.index$offset(), offsetOf(b, 0xC2));
        assertEquals(vfio_irq_info.count$offset(), offsetOf(b, 0xC3));

        ByteBuf s = Unpooled.buffer();
        int flags = vfio_h.VFIO_IRQ_SET_DATA_BOOL() | vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
        DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(flags, 0xD2, 0xD3, 1, new byte[] {(byte) 0xD4}), s);
        assertEquals(vfio_irq_set.flags$offset(), offsetOf(s, flags));
        assertEquals(vfio_irq_set.index$offset(), offsetOf(s, 0xD2));
        assertEquals(vfio_irq_set.start$offset(), offsetOf(s, 0xD3));
        assertEquals(vfio_irq_set.data$offset(), offsetOf(s, 0xD4));
    }

    /** vfio-user's DMA_MAP / DMA_UNMAP payloads put addr and size where the type1 IOMMU structs put iova and size. */
    @Test
    void dmaMapAndUnmapFieldsWhereType1StructsPutThem() {
        ByteBuf m = Unpooled.buffer();
        DmaMapCodec.encode(new DmaMapCodec.Request(vfio_user_h.VFIO_USER_F_DMA_REGION_READ()
                | vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0xE1, 0xE2, 0xE3), m);
        assertEquals(vfio_iommu_type1_dma_map.flags$offset(), offsetOf(m, 3));
        assertEquals(vfio_iommu_type1_dma_map.iova$offset(), offsetOf(m, 0xE2));
        assertEquals(vfio_iommu_type1_dma_map.size$offset(), offsetOf(m, 0xE3));
        ByteBuf u = Unpooled.buffer();
        DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(0xF1, 0xF2), u);
        assertEquals(vfio_iommu_type1_dma_unmap.iova$offset(), offsetOf(u, 0xF1));
        assertEquals(vfio_iommu_type1_dma_unmap.size$offset(), offsetOf(u, 0xF2));
    }

    @Test
    void socketStructsMatchGlibc() {
        same("sizeof sockaddr_un", SocketLibc.SOCKADDR_UN_SIZE);
        same("sockaddr_un.sun_family", 0);
        same("sockaddr_un.sun_path", SocketLibc.SUN_PATH_OFFSET);
        same("sizeof sun_path", SocketLibc.SUN_PATH_SIZE);
        same("sizeof iovec", SocketLibc.IOVEC_SIZE);
        same("iovec.iov_base", 0);
        same("iovec.iov_len", 8);
        same("sizeof msghdr", SocketLibc.MSGHDR_SIZE);
        same("msghdr.msg_name", SocketLibc.MSG_NAME);
        same("msghdr.msg_namelen", SocketLibc.MSG_NAMELEN);
        same("msghdr.msg_iov", SocketLibc.MSG_IOV);
        same("msghdr.msg_iovlen", SocketLibc.MSG_IOVLEN);
        same("msghdr.msg_control", SocketLibc.MSG_CONTROL);
        same("msghdr.msg_controllen", SocketLibc.MSG_CONTROLLEN);
        same("msghdr.msg_flags", SocketLibc.MSG_FLAGS);
        same("sizeof cmsghdr", SocketLibc.CMSGHDR_SIZE);
        same("cmsghdr.cmsg_len", SocketLibc.CMSG_LEN_OFFSET);
        same("cmsghdr.cmsg_level", SocketLibc.CMSG_LEVEL_OFFSET);
        same("cmsghdr.cmsg_type", SocketLibc.CMSG_TYPE_OFFSET);
        same("CMSG_DATA offset", SocketLibc.cmsgLen(0));
        same("sizeof pollfd", SocketLibc.POLLFD_SIZE);
        same("pollfd.fd", 0);
        same("pollfd.events", 4);
        same("pollfd.revents", 6);
        for (int n = 0; n <= SocketLibc.SCM_MAX_FD; n++) {
            same("CMSG_SPACE " + n, SocketLibc.cmsgSpace(4L * n));
            same("CMSG_LEN " + n, SocketLibc.cmsgLen(4L * n));
        }
    }

    @Test
    void socketConstantsMatchGlibc() {
        same("AF_UNIX", SocketLibc.AF_UNIX);
        same("SOCK_STREAM", SocketLibc.SOCK_STREAM);
        same("SOCK_CLOEXEC", SocketLibc.SOCK_CLOEXEC);
        same("SOL_SOCKET", SocketLibc.SOL_SOCKET);
        same("SCM_RIGHTS", SocketLibc.SCM_RIGHTS);
        same("MSG_CTRUNC", SocketLibc.MSG_CTRUNC);
        same("MSG_TRUNC", SocketLibc.MSG_TRUNC);
        same("MSG_DONTWAIT", SocketLibc.MSG_DONTWAIT);
        same("MSG_NOSIGNAL", SocketLibc.MSG_NOSIGNAL);
        same("MSG_CMSG_CLOEXEC", SocketLibc.MSG_CMSG_CLOEXEC);
        same("SHUT_RDWR", SocketLibc.SHUT_RDWR);
        same("POLLIN", SocketLibc.POLLIN);
        same("POLLOUT", SocketLibc.POLLOUT);
        same("POLLERR", SocketLibc.POLLERR);
        same("POLLHUP", SocketLibc.POLLHUP);
        same("POLLNVAL", SocketLibc.POLLNVAL);
    }

    @Test
    void headerIsSixteenBytes() {
        ByteBuf b = Unpooled.buffer();
        VfioUserHeader.command(0x1234, VfioUserCommand.DEVICE_GET_INFO, 16, false).encode(b);
        assertEquals(VfioUserHeader.SIZE, b.readableBytes());
        assertEquals(0x1234, b.getUnsignedShortLE(0));
        assertEquals(4, b.getUnsignedShortLE(2));
        assertEquals(32, b.getIntLE(4));
    }
}
