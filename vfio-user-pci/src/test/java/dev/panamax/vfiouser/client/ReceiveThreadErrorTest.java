package dev.panamax.vfiouser.client;

import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15, defect 9: an Error on the client's receive thread (here thrown by the handler of the server's own
 * requests, as an OutOfMemoryError or a SIGBUS's InternalError would be) marks the device broken with one line; the
 * thread does not die silently with the device still "usable" and every vCPU waiting on it until its deadline.
 */
class ReceiveThreadErrorTest {

    private static void errorOnTheReceiveThread(Throwable error) throws Exception {
        UnixSocket[] pair = UnixSocket.pair();
        CompletableFuture<String> broken = new CompletableFuture<>();
        AtomicReference<Throwable> escaped = new AtomicReference<>();
        Thread.UncaughtExceptionHandler old = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> escaped.set(e));
        VfioUserProxy proxy = new VfioUserProxy(pair[0], "error-test", VfioUserClient.Options.defaults(), broken::complete);
        try (MessageChannel server = new MessageChannel(pair[1], 1, 1 << 20)) {
            proxy.start(m -> {
                m.close();
                throw sneaky(error);
            });
            assertTrue(proxy.usable());
            server.sendCommand(1, VfioUserCommand.DMA_READ, false, Unpooled.wrappedBuffer(new byte[16]));
            String reason = broken.get(5, TimeUnit.SECONDS);
            assertTrue(reason.contains(error.getClass().getSimpleName()), reason);
            assertFalse(reason.contains("\n"), "one line");
            assertFalse(proxy.usable());
            assertNull(escaped.get(), "nothing escapes the receive thread");
        } finally {
            Thread.setDefaultUncaughtExceptionHandler(old);
            proxy.close();
        }
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> RuntimeException sneaky(Throwable t) throws T {
        throw (T) t;
    }

    @Test
    void outOfMemoryErrorMarksTheDeviceBroken() throws Exception {
        errorOnTheReceiveThread(new OutOfMemoryError("test"));
    }

    @Test
    void internalErrorAsFromASigbusMarksTheDeviceBroken() throws Exception {
        errorOnTheReceiveThread(new InternalError("a fault occurred in an unsafe memory access"));
    }

    @Test
    void stackOverflowErrorMarksTheDeviceBroken() throws Exception {
        errorOnTheReceiveThread(new StackOverflowError());
    }
}
