package dev.panamax.vfiouser.transport;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15, defect 14: a socket's fd is closed only after every user is gone, so that its number cannot be reused
 * (by another open in this process) while a thread is still inside a {@code recvmsg}/{@code sendmsg}/{@code poll}
 * on it.
 */
class UnixSocketCloseTest {

    /** What /proc/self/fd/N points at ("socket:[inode]"), or null when the fd is not open. */
    private static String target(int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
        } catch (IOException e) {
            return null;
        }
    }

    /** The fd still names this very socket (not closed, not reused). */
    private static boolean open(int fd, String target) {
        return target.equals(target(fd));
    }

    @Test
    void closeWakesABlockedReceiveAndClosesTheFdAfterIt() throws Exception {
        UnixSocket[] p = UnixSocket.pair();
        try {
            int fd = p[0].fd();
            String target = target(fd);
            CompletableFuture<UnixSocket.Received> got = new CompletableFuture<>();
            Thread receiver = Thread.ofPlatform().daemon().name("blocked-receive").start(() -> {
                try (Arena arena = Arena.ofConfined()) {
                    got.complete(p[0].receiveRaw(arena.allocate(64)));
                } catch (Throwable t) {
                    got.completeExceptionally(t);
                }
            });
            // Time to block in recvmsg (a receive that has not started yet sees EBADF or end of stream: also fine).
            Thread.sleep(200);
            assertFalse(got.isDone(), "nothing was sent, the receive must block");
            p[0].close();
            // The close shuts the socket down (shutdown(2)): the blocked receive returns end of stream.
            UnixSocket.Received r = got.get(5, TimeUnit.SECONDS);
            assertEquals(0, r.bytes());
            receiver.join(5000);
            assertFalse(open(fd, target), "the last user is gone: the fd is closed");
        } finally {
            p[0].close();
            p[1].close();
        }
    }

    @Test
    void theFdStaysOpenUntilTheLastUserReleasesIt() {
        UnixSocket[] p = UnixSocket.pair();
        try {
            int fd = p[0].fd();
            String target = target(fd);
            assertTrue(p[0].acquire());
            p[0].close();
            assertTrue(open(fd, target), "a user is inside a call: the fd number must not be free for reuse");
            try (Arena arena = Arena.ofConfined()) {
                // Shut down at close: a receive by the user in flight sees end of stream at once, never blocks.
                assertEquals(0, SocketLibc.recvmsgRaw(fd, emptyMsg(arena), 0));
            }
            p[0].release();
            assertFalse(open(fd, target), "the last user is gone: the fd is closed");
        } finally {
            p[1].close();
        }
    }

    @Test
    void callsAfterCloseFailWithEbadfAndNeverTouchTheOldNumber() {
        UnixSocket[] p = UnixSocket.pair();
        p[0].close();
        p[1].close();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(8);
            assertEquals(-dev.panamax.core.sys.Errno.EBADF, p[0].receiveRaw(b).bytes());
            assertEquals(-dev.panamax.core.sys.Errno.EBADF, p[0].sendRaw(b, new int[0]));
            assertThrows(dev.panamax.core.sys.LinuxException.class, () -> p[0].poll(SocketLibc.POLLIN, Duration.ZERO));
        }
        assertFalse(p[0].acquire());
    }

    private static MemorySegment emptyMsg(Arena arena) {
        MemorySegment iov = arena.allocate(SocketLibc.IOVEC_SIZE, 8);
        MemorySegment buf = arena.allocate(8);
        iov.set(java.lang.foreign.ValueLayout.JAVA_LONG, 0, buf.address());
        iov.set(java.lang.foreign.ValueLayout.JAVA_LONG, 8, buf.byteSize());
        MemorySegment msg = arena.allocate(SocketLibc.MSGHDR_SIZE, 8);
        msg.set(java.lang.foreign.ValueLayout.JAVA_LONG, SocketLibc.MSG_IOV, iov.address());
        msg.set(java.lang.foreign.ValueLayout.JAVA_LONG, SocketLibc.MSG_IOVLEN, 1);
        return msg;
    }
}
