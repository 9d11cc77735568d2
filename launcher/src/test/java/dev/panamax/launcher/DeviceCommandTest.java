package dev.panamax.launcher;

import dev.panamax.vfiouser.protocol.VersionCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.blk.VirtioBlkServer;
import dev.panamax.vmm.Verdict;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code panamax device virtio-blk}: its one-line errors and exit status, and that it serves. */
class DeviceCommandTest {
    @TempDir
    Path dir;

    /** Runs the command line; @return {exit status, stderr} */
    static Object[] run(String... args) {
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            int status = Main.execute(args);
            return new Object[]{status, err.toString(StandardCharsets.UTF_8)};
        } finally {
            System.setErr(saved);
        }
    }

    static void assertError(String line, String... args) {
        Object[] r = run(args);
        assertEquals(Verdict.ERROR_STATUS, r[0], (String) r[1]);
        assertTrue(((String) r[1]).contains("panamax: error: " + line + "\n"), (String) r[1]);
    }

    @Test
    void badInputsAreOneLineErrors() throws Exception {
        Path sock = dir.resolve("blk.sock");
        Path none = dir.resolve("none.img");
        assertError("disk image " + none + " does not exist", "device", "virtio-blk", "--socket", sock.toString(), "--disk", none.toString());
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[4096]);
        Path file = dir.resolve("file");
        Files.writeString(file, "x");
        assertError("socket path " + file + " already exists (remove it if no server uses it)",
                "device", "virtio-blk", "--socket", file.toString(), "--disk", disk.toString());
        assertError("--serial must be ASCII of at most 20 bytes, not 'ä'",
                "device", "virtio-blk", "--socket", sock.toString(), "--disk", disk.toString(), "--serial", "ä");
        try (VirtioBlkServer other = new VirtioBlkServer(sock, disk, VirtioBlk.Options.DEFAULT)) {
            assertError("socket " + sock + " is in use by another server", "device", "virtio-blk", "--socket", sock.toString(), "--disk", disk.toString());
        }
        assertFalse(Files.exists(sock));
    }

    @Test
    void servesVersionOnTheSocket() throws Exception {
        Path sock = dir.resolve("serve.sock");
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[4096]);
        // The command runs until the JVM ends (its shutdown hook then removes the socket).
        Thread.ofPlatform().daemon().start(() -> Main.execute("device", "virtio-blk", "--socket", sock.toString(), "--disk", disk.toString(),
                "--read-only", "--dma-messages"));
        for (int i = 0; i < 200 && !Files.exists(sock); i++) {
            Thread.sleep(25);
        }
        MessageChannel channel = new MessageChannel(UnixSocket.connect(sock), 8, 1 << 20);
        try {
            ByteBuf p = Unpooled.buffer();
            VersionCodec.encode(new VersionCodec.Version(0, 0, null), p);
            channel.sendCommand(1, VfioUserCommand.VERSION, false, p);
            try (ReceivedMessage m = channel.receive(Duration.ofSeconds(5))) {
                assertFalse(m.header().isError());
                assertEquals(0, VersionCodec.decode(m.payloadBuffer()).major());
            }
        } finally {
            channel.close();
        }
    }
}
