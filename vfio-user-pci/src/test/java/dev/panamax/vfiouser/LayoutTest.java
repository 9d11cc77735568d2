package dev.panamax.vfiouser;

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
 * Compares the codecs' offsets and constants, and the socket structs of {@link SocketLibc}, with
 * what gcc computes from {@code /usr/include/linux/vfio.h}, {@code sys/socket.h}, {@code sys/un.h}
 * and {@code poll.h}. Fails (does not skip) when gcc is missing.
 */
class LayoutTest {
    private static final String PROGRAM = """
            #include <stdio.h>
            #include <stddef.h>
            #include <poll.h>
            #include <sys/socket.h>
            #include <sys/un.h>
            #include <linux/vfio.h>
            #define P(name, v) printf("%s %ld\\n", name, (long)(v))
            #define OFF(s, f) P(#s "." #f, offsetof(struct s, f))
            #define SZ(s) P("sizeof " #s, sizeof(struct s))
            int main(void) {
                SZ(vfio_region_info); OFF(vfio_region_info, argsz); OFF(vfio_region_info, flags);
                OFF(vfio_region_info, index); OFF(vfio_region_info, cap_offset);
                OFF(vfio_region_info, size); OFF(vfio_region_info, offset);
                OFF(vfio_device_info, argsz); OFF(vfio_device_info, flags);
                OFF(vfio_device_info, num_regions); OFF(vfio_device_info, num_irqs);
                SZ(vfio_irq_info); OFF(vfio_irq_info, argsz); OFF(vfio_irq_info, flags);
                OFF(vfio_irq_info, index); OFF(vfio_irq_info, count);
                SZ(vfio_irq_set); OFF(vfio_irq_set, argsz); OFF(vfio_irq_set, flags); OFF(vfio_irq_set, index);
                OFF(vfio_irq_set, start); OFF(vfio_irq_set, count); OFF(vfio_irq_set, data);
                SZ(vfio_info_cap_header); OFF(vfio_info_cap_header, id); OFF(vfio_info_cap_header, version);
                OFF(vfio_info_cap_header, next);
                SZ(vfio_region_sparse_mmap_area); OFF(vfio_region_info_cap_sparse_mmap, nr_areas);
                OFF(vfio_region_info_cap_sparse_mmap, areas);
                SZ(vfio_region_info_cap_type); OFF(vfio_region_info_cap_type, type);
                OFF(vfio_region_info_cap_type, subtype);
                SZ(vfio_iommu_type1_dma_map); OFF(vfio_iommu_type1_dma_map, flags); OFF(vfio_iommu_type1_dma_map, iova);
                OFF(vfio_iommu_type1_dma_map, size);
                SZ(vfio_iommu_type1_dma_unmap); OFF(vfio_iommu_type1_dma_unmap, iova); OFF(vfio_iommu_type1_dma_unmap, size);
                P("VFIO_DEVICE_FLAGS_RESET", VFIO_DEVICE_FLAGS_RESET); P("VFIO_DEVICE_FLAGS_PCI", VFIO_DEVICE_FLAGS_PCI);
                P("VFIO_REGION_INFO_FLAG_READ", VFIO_REGION_INFO_FLAG_READ);
                P("VFIO_REGION_INFO_FLAG_WRITE", VFIO_REGION_INFO_FLAG_WRITE);
                P("VFIO_REGION_INFO_FLAG_MMAP", VFIO_REGION_INFO_FLAG_MMAP);
                P("VFIO_REGION_INFO_FLAG_CAPS", VFIO_REGION_INFO_FLAG_CAPS);
                P("VFIO_REGION_INFO_CAP_SPARSE_MMAP", VFIO_REGION_INFO_CAP_SPARSE_MMAP);
                P("VFIO_REGION_INFO_CAP_TYPE", VFIO_REGION_INFO_CAP_TYPE);
                P("VFIO_IRQ_INFO_EVENTFD", VFIO_IRQ_INFO_EVENTFD); P("VFIO_IRQ_INFO_MASKABLE", VFIO_IRQ_INFO_MASKABLE);
                P("VFIO_IRQ_INFO_AUTOMASKED", VFIO_IRQ_INFO_AUTOMASKED); P("VFIO_IRQ_INFO_NORESIZE", VFIO_IRQ_INFO_NORESIZE);
                P("VFIO_IRQ_SET_DATA_NONE", VFIO_IRQ_SET_DATA_NONE); P("VFIO_IRQ_SET_DATA_BOOL", VFIO_IRQ_SET_DATA_BOOL);
                P("VFIO_IRQ_SET_DATA_EVENTFD", VFIO_IRQ_SET_DATA_EVENTFD);
                P("VFIO_IRQ_SET_ACTION_MASK", VFIO_IRQ_SET_ACTION_MASK);
                P("VFIO_IRQ_SET_ACTION_UNMASK", VFIO_IRQ_SET_ACTION_UNMASK);
                P("VFIO_IRQ_SET_ACTION_TRIGGER", VFIO_IRQ_SET_ACTION_TRIGGER);
                P("VFIO_DMA_MAP_FLAG_READ", VFIO_DMA_MAP_FLAG_READ); P("VFIO_DMA_MAP_FLAG_WRITE", VFIO_DMA_MAP_FLAG_WRITE);
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

    @Test
    void regionInfoMatchesVfioH() {
        same("sizeof vfio_region_info", DeviceGetRegionInfoCodec.SIZE);
        same("vfio_region_info.argsz", DeviceGetRegionInfoCodec.OFFSET_ARGSZ);
        same("vfio_region_info.flags", DeviceGetRegionInfoCodec.OFFSET_FLAGS);
        same("vfio_region_info.index", DeviceGetRegionInfoCodec.OFFSET_INDEX);
        same("vfio_region_info.cap_offset", DeviceGetRegionInfoCodec.OFFSET_CAP_OFFSET);
        same("vfio_region_info.size", DeviceGetRegionInfoCodec.OFFSET_SIZE);
        same("vfio_region_info.offset", DeviceGetRegionInfoCodec.OFFSET_OFFSET);
        // The encoder writes each field where the constants say: use distinct marker bytes.
        ByteBuf b = Unpooled.buffer();
        DeviceGetRegionInfoCodec.encodeReply(new DeviceGetRegionInfoCodec.RegionInfo(0xA1, 0xA2, 0xA3, 0xA4,
                List.of(new DeviceGetRegionInfoCodec.Type(0xA5, 0xA6))), 4096, b);
        same("vfio_region_info.index", offsetOf(b, 0xA2));
        same("vfio_region_info.size", offsetOf(b, 0xA3));
        same("vfio_region_info.offset", offsetOf(b, 0xA4));
        assertEquals(0xA1 | dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_CAPS(), b.getIntLE((int) (long) c.get("vfio_region_info.flags")));
        assertEquals(DeviceGetRegionInfoCodec.SIZE, b.getIntLE((int) (long) c.get("vfio_region_info.cap_offset")));
        int capType = DeviceGetRegionInfoCodec.SIZE;
        same("vfio_region_info_cap_type.type", offsetOf(b, 0xA5) - capType);
        same("vfio_region_info_cap_type.subtype", offsetOf(b, 0xA6) - capType);
        same("sizeof vfio_region_info_cap_type", DeviceGetRegionInfoCodec.CAP_TYPE_SIZE);
        same("sizeof vfio_info_cap_header", DeviceGetRegionInfoCodec.CAP_HEADER_SIZE);
        same("vfio_info_cap_header.id", 0);
        same("vfio_info_cap_header.version", 2);
        same("vfio_info_cap_header.next", 4);
        same("sizeof vfio_region_sparse_mmap_area", DeviceGetRegionInfoCodec.SPARSE_AREA_SIZE);
        same("vfio_region_info_cap_sparse_mmap.nr_areas", DeviceGetRegionInfoCodec.CAP_HEADER_SIZE);
        same("vfio_region_info_cap_sparse_mmap.areas", DeviceGetRegionInfoCodec.SPARSE_AREAS_OFFSET);
        same("VFIO_REGION_INFO_FLAG_READ", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_READ());
        same("VFIO_REGION_INFO_FLAG_WRITE", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_WRITE());
        same("VFIO_REGION_INFO_FLAG_MMAP", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_MMAP());
        same("VFIO_REGION_INFO_FLAG_CAPS", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_CAPS());
        same("VFIO_REGION_INFO_CAP_SPARSE_MMAP", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_CAP_SPARSE_MMAP());
        same("VFIO_REGION_INFO_CAP_TYPE", dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_CAP_TYPE());
    }

    @Test
    void deviceInfoMatchesVfioH() {
        same("vfio_device_info.argsz", dev.panamax.vfio.bindings.vfio_device_info.argsz$offset());
        same("vfio_device_info.flags", dev.panamax.vfio.bindings.vfio_device_info.flags$offset());
        same("vfio_device_info.num_regions", dev.panamax.vfio.bindings.vfio_device_info.num_regions$offset());
        same("vfio_device_info.num_irqs", dev.panamax.vfio.bindings.vfio_device_info.num_irqs$offset());
        ByteBuf b = Unpooled.buffer();
        DeviceGetInfoCodec.encode(new DeviceGetInfoCodec.DeviceInfo(0xB0, 0xB1, 0xB2, 0xB3), b);
        same("vfio_device_info.argsz", offsetOf(b, 0xB0));
        same("vfio_device_info.flags", offsetOf(b, 0xB1));
        same("vfio_device_info.num_regions", offsetOf(b, 0xB2));
        same("vfio_device_info.num_irqs", offsetOf(b, 0xB3));
        same("VFIO_DEVICE_FLAGS_RESET", dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_RESET());
        same("VFIO_DEVICE_FLAGS_PCI", dev.panamax.vfio.bindings.vfio_h.VFIO_DEVICE_FLAGS_PCI());
    }

    @Test
    void irqInfoAndIrqSetMatchVfioH() {
        same("sizeof vfio_irq_info", DeviceGetIrqInfoCodec.SIZE);
        ByteBuf b = Unpooled.buffer();
        DeviceGetIrqInfoCodec.encode(new DeviceGetIrqInfoCodec.IrqInfo(0xC0, 0xC1, 0xC2, 0xC3), b);
        same("vfio_irq_info.argsz", offsetOf(b, 0xC0));
        same("vfio_irq_info.flags", offsetOf(b, 0xC1));
        same("vfio_irq_info.index", offsetOf(b, 0xC2));
        same("vfio_irq_info.count", offsetOf(b, 0xC3));
        same("vfio_irq_info.index", dev.panamax.vfio.bindings.vfio_irq_info.index$offset());
        same("vfio_irq_info.count", dev.panamax.vfio.bindings.vfio_irq_info.count$offset());
        same("VFIO_IRQ_INFO_EVENTFD", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_EVENTFD());
        same("VFIO_IRQ_INFO_MASKABLE", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_MASKABLE());
        same("VFIO_IRQ_INFO_AUTOMASKED", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_AUTOMASKED());
        same("VFIO_IRQ_INFO_NORESIZE", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_INFO_NORESIZE());

        same("sizeof vfio_irq_set", DeviceSetIrqsCodec.SIZE);
        ByteBuf s = Unpooled.buffer();
        int flags = dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL() | dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
        DeviceSetIrqsCodec.encode(new DeviceSetIrqsCodec.IrqSet(flags, 0xD2, 0xD3, 1, new byte[] {(byte) 0xD4}), s);
        same("vfio_irq_set.argsz", dev.panamax.vfio.bindings.vfio_irq_set.argsz$offset());
        same("vfio_irq_set.flags", offsetOf(s, flags));
        same("vfio_irq_set.index", offsetOf(s, 0xD2));
        same("vfio_irq_set.start", offsetOf(s, 0xD3));
        same("vfio_irq_set.count", dev.panamax.vfio.bindings.vfio_irq_set.count$offset());
        same("vfio_irq_set.data", offsetOf(s, 0xD4));
        same("VFIO_IRQ_SET_DATA_NONE", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_NONE());
        same("VFIO_IRQ_SET_DATA_BOOL", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_BOOL());
        same("VFIO_IRQ_SET_DATA_EVENTFD", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_DATA_EVENTFD());
        same("VFIO_IRQ_SET_ACTION_MASK", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_MASK());
        same("VFIO_IRQ_SET_ACTION_UNMASK", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_UNMASK());
        same("VFIO_IRQ_SET_ACTION_TRIGGER", dev.panamax.vfio.bindings.vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER());
    }

    @Test
    void dmaMapAndUnmapMatchType1Structs() {
        same("sizeof vfio_iommu_type1_dma_map", DmaMapCodec.SIZE);
        ByteBuf m = Unpooled.buffer();
        DmaMapCodec.encode(new DmaMapCodec.Request(dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ() | dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE(), 0xE1, 0xE2, 0xE3), m);
        same("vfio_iommu_type1_dma_map.flags", offsetOf(m, 3));
        same("vfio_iommu_type1_dma_map.iova", offsetOf(m, 0xE2));
        same("vfio_iommu_type1_dma_map.size", offsetOf(m, 0xE3));
        same("VFIO_DMA_MAP_FLAG_READ", dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_READ());
        same("VFIO_DMA_MAP_FLAG_WRITE", dev.panamax.vfiouser.bindings.vfio_user_h.VFIO_USER_F_DMA_REGION_WRITE());
        same("sizeof vfio_iommu_type1_dma_unmap", DmaUnmapCodec.SIZE);
        ByteBuf u = Unpooled.buffer();
        DmaUnmapCodec.encode(new DmaUnmapCodec.Unmap(0xF1, 0xF2), u);
        same("vfio_iommu_type1_dma_unmap.iova", offsetOf(u, 0xF1));
        same("vfio_iommu_type1_dma_unmap.size", offsetOf(u, 0xF2));
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
