package dev.panamax.vfiouser.server;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.core.sys.MemFd;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.MessageChannel;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The memfds that cross the socket are sealed against resizing (issue 15, defect 2): a peer that gets guest RAM
 * (with DMA_MAP) or a region's memfd (with a region info reply) cannot {@code ftruncate} it under the other side's
 * mappings, which would turn that side's next access into SIGBUS. As QEMU's memfd backend:
 * {@code F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL}.
 */
class SealedMemFdTest {
    static final int SEALS = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;

    /** What a hostile peer tries on a memfd it received: every resize and every new seal fails with EPERM. */
    static void assertPeerCannotResize(int fd, long size) {
        assertEquals(SEALS, Libc.fcntl(fd, Libc.F_GET_SEALS, 0, "F_GET_SEALS"));
        for (long to : new long[]{0, size / 2, size + 4096}) {
            LinuxException e = assertThrows(LinuxException.class, () -> Libc.ftruncate(fd, to), "ftruncate to " + to);
            assertEquals(Errno.EPERM, e.errno());
        }
        assertEquals(-Errno.EPERM, Libc.fcntlRaw(fd, Libc.F_ADD_SEALS, 0x8 /* F_SEAL_WRITE */), "no seal can be added");
        assertEquals(size, Libc.fstatSize(fd));
    }

    @Test
    void guestRamThatTheVmmSendsCannotBeResizedByTheServer() {
        UnixSocket[] pair = UnixSocket.pair();
        try (GuestRam ram = new GuestRam(new AddressSpace(), 2 << 20);
             MessageChannel vmm = new MessageChannel(pair[0], 8, 1 << 20);
             MessageChannel server = new MessageChannel(pair[1], 8, 1 << 20)) {
            vmm.sendCommand(1, VfioUserCommand.DMA_MAP, false, Unpooled.EMPTY_BUFFER, ram.memfd().fd());
            try (ReceivedMessage m = server.receive(Duration.ofSeconds(5))) {
                assertEquals(1, m.fds().count());
                assertPeerCannotResize(m.fds().peek(0), 2 << 20);
            }
            ram.memfd().mapping().set(java.lang.foreign.ValueLayout.JAVA_BYTE, (2 << 20) - 1, (byte) 1); // still mapped whole
        }
    }

    @Test
    void aRegionMemfdThatTheServerSendsCannotBeResizedByTheClient() throws InterruptedException {
        PciFunction config = VfioUserDevice.pciFunction("sealed", 0x4e58, 0x0001, 0x018000, 1);
        config.setBar(2, PciBar.memory64(8192, true), null);
        try (MemFd bar2 = new MemFd("bar2", 8192)) {
            VfioUserDevice device = VfioUserDevice.builder(config).region(VfioUserRegion.memfd(2, bar2)).build();
            UnixSocket[] pair = UnixSocket.pair();
            VfioUserServer server = new VfioUserServer(pair[1], device);
            server.start();
            try (TestClient client = new TestClient(pair[0], 0x40000, 0x1000)) {
                client.version();
                try (ReceivedMessage m = client.call(VfioUserCommand.DEVICE_GET_REGION_INFO, payload(b ->
                        DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(1024, vfio_h.VFIO_PCI_BAR2_REGION_INDEX()), b)))) {
                    assertFalse(m.header().isError());
                    assertEquals(1, m.fds().count());
                    assertPeerCannotResize(m.fds().peek(0), 8192);
                }
            }
            assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)));
            server.close();
        }
    }
}
