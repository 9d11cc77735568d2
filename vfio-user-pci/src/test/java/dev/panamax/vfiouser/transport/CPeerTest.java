package dev.panamax.vfiouser.transport;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DmaMapCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A vfio-user client in another process, written in C with the libc CMSG macros (compiled with
 * gcc), talks to a {@link MessageChannel}: its memfd arrives with DMA_MAP, ours goes back with a
 * DEVICE_GET_REGION_INFO reply, and each side reads what the other wrote.
 */
class CPeerTest {
    private static final String CLIENT = """
            #define _GNU_SOURCE
            #include <stdint.h>
            #include <stdio.h>
            #include <string.h>
            #include <unistd.h>
            #include <sys/mman.h>
            #include <sys/socket.h>
            #include <sys/un.h>

            struct hdr { uint16_t id, cmd; uint32_t size, flags, error; };

            static int send_msg(int s, void *buf, size_t len, int fd) {
                struct iovec iov = { buf, len };
                union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
                if (fd >= 0) {
                    m.msg_control = u.b; m.msg_controllen = sizeof u.b;
                    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
                    memcpy(CMSG_DATA(c), &fd, sizeof(int));
                }
                return sendmsg(s, &m, 0) == (ssize_t)len ? 0 : -1;
            }

            /* Reads one whole message into buf; returns its size, *fd the fd that came or -1. */
            static int recv_msg(int s, char *buf, int *fd) {
                union { char b[CMSG_SPACE(sizeof(int) * 4)]; struct cmsghdr align; } u;
                struct iovec iov = { buf, 16 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
                if (recvmsg(s, &m, MSG_WAITALL) != 16) return -1;
                *fd = -1;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                    if (c->cmsg_type == SCM_RIGHTS) memcpy(fd, CMSG_DATA(c), sizeof(int));
                uint32_t size = ((struct hdr *)buf)->size;
                if (size > 16 && recv(s, buf + 16, size - 16, MSG_WAITALL) != (ssize_t)(size - 16)) return -1;
                return (int)size;
            }

            int main(int argc, char **argv) {
                int s = socket(AF_UNIX, SOCK_STREAM, 0);
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
                if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }

                int mfd = memfd_create("c-ram", 0);
                ftruncate(mfd, 4096);
                pwrite(mfd, "hello from C", 12, 100);
                char msg[48] = {0};
                struct hdr *h = (struct hdr *)msg;
                h->id = 1; h->cmd = 2; h->size = 48;                      /* DMA_MAP */
                uint32_t argsz = 32, flags = 3; uint64_t off = 0, addr = 0x100000, size = 4096;
                memcpy(msg + 16, &argsz, 4); memcpy(msg + 20, &flags, 4);
                memcpy(msg + 24, &off, 8); memcpy(msg + 32, &addr, 8); memcpy(msg + 40, &size, 8);
                if (send_msg(s, msg, 48, mfd)) { perror("sendmsg"); return 1; }

                memset(msg, 0, sizeof msg);
                h->id = 2; h->cmd = 5; h->size = 48;                      /* DEVICE_GET_REGION_INFO, index 0 */
                argsz = 4096; memcpy(msg + 16, &argsz, 4);
                if (send_msg(s, msg, 48, -1)) { perror("sendmsg"); return 1; }

                char buf[4096]; int fd;
                if (recv_msg(s, buf, &fd) != 16 || ((struct hdr *)buf)->id != 1 || fd != -1) { fprintf(stderr, "bad DMA_MAP reply\\n"); return 1; }
                int n = recv_msg(s, buf, &fd);
                if (n < 48 || ((struct hdr *)buf)->id != 2 || fd < 0) { fprintf(stderr, "bad REGION_INFO reply %d fd %d\\n", n, fd); return 1; }
                uint64_t rsize; memcpy(&rsize, buf + 16 + 16, 8);
                char *p = mmap(NULL, rsize, PROT_READ, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED) { perror("mmap"); return 1; }
                printf("region %lu bytes: %s\\n", (unsigned long)rsize, p + 8);
                return 0;
            }
            """;

    @Test
    void aCClientExchangesFdsWithUs(@TempDir Path dir) throws Exception {
        Path src = dir.resolve("client.c");
        Path exe = dir.resolve("client");
        Files.writeString(src, CLIENT);
        Process gcc = new ProcessBuilder("gcc", "-O0", "-Wall", "-o", exe.toString(), src.toString()).redirectErrorStream(true).start();
        String gccOut = new String(gcc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(gcc.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, gcc.exitValue(), "gcc: " + gccOut);

        Path path = dir.resolve("s.sock");
        try (UnixSocket listener = UnixSocket.listen(path, 1); MemFd bar = new MemFd("bar0", 8192)) {
            Process client = new ProcessBuilder(exe.toString(), path.toString()).redirectErrorStream(true).start();
            try (MessageChannel server = new MessageChannel(listener.accept(Duration.ofSeconds(10)), 1, 1 << 20)) {
                try (ReceivedMessage m = server.receive(Duration.ofSeconds(10))) {
                    assertEquals(VfioUserCommand.DMA_MAP, m.header().command());
                    DmaMapCodec.Request r = DmaMapCodec.decode(m.payloadBuffer());
                    DmaMapCodec.checkFds(r, m.fds().count());
                    assertEquals(0x100000, r.address());
                    MemorySegment ram = Libc.mmap(r.size(), Libc.PROT_READ, Libc.MAP_SHARED, m.fds().peek(0), r.offset(), "client RAM");
                    assertEquals("hello from C", ram.getString(100));
                    Libc.munmap(ram);
                    server.sendReply(m.header(), Unpooled.EMPTY_BUFFER);
                }
                try (ReceivedMessage m = server.receive(Duration.ofSeconds(10))) {
                    var req = DeviceGetRegionInfoCodec.decodeRequest(m.payloadBuffer());
                    assertEquals(0, req.index());
                    bar.mapping().setString(8, "hello from Java");
                    var info = new VfioRegionInfo(0, dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_READ()
                            | dev.panamax.vfio.bindings.vfio_h.VFIO_REGION_INFO_FLAG_MMAP(), bar.size(), 0,
                            List.of(new VfioRegionInfo.SparseMmap(List.of(new VfioRegionInfo.Area(0, 4096)))));
                    ByteBuf reply = Unpooled.buffer();
                    DeviceGetRegionInfoCodec.encodeReply(info, req.argsz(), reply);
                    server.sendReply(m.header(), reply, bar.fd());
                }
                assertTrue(client.waitFor(10, TimeUnit.SECONDS), "C client hangs");
                String out = new String(client.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertEquals(0, client.exitValue(), out);
                assertEquals("region 8192 bytes: hello from Java\n", out);
                // The client exited: the next receive sees end of stream.
                assertThrows(PeerClosedException.class, () -> server.receive(Duration.ofSeconds(10)));
            } finally {
                client.destroyForcibly();
            }
        }
    }

    private static <T extends Throwable> void assertThrows(Class<T> type, org.junit.jupiter.api.function.Executable e) {
        org.junit.jupiter.api.Assertions.assertThrows(type, e);
    }
}
