package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.IoEventFds;
import dev.panamax.core.sys.Libc;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec.SubRegion;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * The client registers the project's server's ioeventfds through {@link IoEventFds}, here a recording stand-in for
 * KvmVm (no /dev/kvm in unit tests): at the BAR's address, again where the guest moves it, never while it does not
 * decode, all deassigned at close. A recorded fd is the server's: signalling it reaches the device's handler.
 */
class VfioUserIoEventFdsTest {
    record Call(boolean assign, long address, int length, OptionalLong datamatch, int fd) {
    }

    /** Records KVM_IOEVENTFD calls; refuses addresses in {@link #refuse}. */
    static final class Recorder implements IoEventFds {
        final List<Call> calls = new ArrayList<>();
        long refuse = -1;

        @Override
        public synchronized void assign(long address, int length, OptionalLong datamatch, int eventFd) {
            IoEventFds.check(length, datamatch);
            if (address == refuse) {
                throw new IllegalStateException("EEXIST");
            }
            calls.add(new Call(true, address, length, datamatch, eventFd));
        }

        @Override
        public synchronized void deassign(long address, int length, OptionalLong datamatch, int eventFd) {
            calls.add(new Call(false, address, length, datamatch, eventFd));
        }
    }

    final BlockingQueue<long[]> writes = new LinkedBlockingQueue<>();
    final Recorder kvm = new Recorder();
    VfioUserServer server;
    VfioUserClient client;
    PciFunction guest;

    @BeforeEach
    void setUp() {
        PciFunction f = VfioUserDevice.pciFunction("bells", 1, 2, 0x018000, 0);
        f.setBar(0, PciBar.memory32(0x1000), null);
        f.setBar(1, PciBar.memory32(0x1000), null);
        RegionHandler h = new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
            }

            @Override
            public void write(long offset, byte[] data) {
                writes.add(new long[]{offset, data.length, data.length > 0 ? data[0] : -1});
            }
        };
        VfioUserDevice device = VfioUserDevice.builder(f).bar(0, h).bar(1, h)
                .ioeventfd(0, 0x100, 2, OptionalLong.of(3)).ioeventfd(0, 0x200, 0, OptionalLong.empty()).build();
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], device);
        server.start();
        client = VfioUserClient.over(pair[0], "bells", VfioUserClient.Options.defaults());
        // The guest's view of the function: BAR 0 and 1 as the server has them, BAR 3 which it lacks.
        guest = VfioUserDevice.pciFunction("guest", 1, 2, 0x018000, 0);
        guest.setBar(0, PciBar.memory32(0x1000), null);
        guest.setBar(1, PciBar.memory32(0x1000), null);
        guest.setBar(3, PciBar.memory32(0x1000), null);
    }

    @AfterEach
    void tearDown() {
        client.close();
        server.close();
    }

    static void signal(int fd) {
        try (Arena a = Arena.ofConfined()) {
            assertEquals(8, Libc.writeRaw(fd, a.allocateFrom(JAVA_LONG, 1L)));
        }
    }

    void decode(boolean on) {
        guest.configWrite(PciConfigSpace.COMMAND, 2, on ? PciConfigSpace.COMMAND_MEMORY : 0);
    }

    @Test
    void registeredAtTheBarFollowedWhenItMovesAndDeassignedAtClose() throws Exception {
        VfioUserIoEventFds bells = VfioUserIoEventFds.attach(client, guest, kvm);
        assertEquals(2, bells.offeredCount(), "BAR 1 has none, BAR 3 is refused by the server (EINVAL): none");
        assertFalse(client.isBroken());
        assertEquals(0, bells.assignedCount(), "BAR 0 does not decode yet");

        guest.setBarAddress(0, 0xE000_0000L);
        decode(true);
        assertEquals(2, bells.assignedCount());
        Call a = kvm.calls.get(0);
        Call b = kvm.calls.get(1);
        assertEquals(new Call(true, 0xE000_0100L, 2, OptionalLong.of(3), a.fd()), a);
        assertEquals(new Call(true, 0xE000_0200L, 0, OptionalLong.empty(), b.fd()), b);

        // The fd is the server's eventfd: a guest write KVM would match reaches the device's handler.
        signal(a.fd());
        long[] w = writes.poll(5, TimeUnit.SECONDS);
        assertNotNull(w);
        assertArrayEquals(new long[]{0x100, 2, 3}, w);
        signal(b.fd());
        assertArrayEquals(new long[]{0x200, 0, -1}, writes.poll(5, TimeUnit.SECONDS));

        // The guest moves the BAR: deassigned at the old address, assigned at the new.
        kvm.calls.clear();
        guest.setBarAddress(0, 0xE001_0000L);
        assertEquals(List.of(new Call(false, 0xE000_0100L, 2, OptionalLong.of(3), a.fd()),
                new Call(false, 0xE000_0200L, 0, OptionalLong.empty(), b.fd()),
                new Call(true, 0xE001_0100L, 2, OptionalLong.of(3), a.fd()),
                new Call(true, 0xE001_0200L, 0, OptionalLong.empty(), b.fd())), kvm.calls);

        // Memory decode off: deassigned; on: back.
        kvm.calls.clear();
        decode(false);
        assertEquals(0, bells.assignedCount());
        assertEquals(2, kvm.calls.stream().filter(c -> !c.assign()).count());
        decode(true);
        assertEquals(2, bells.assignedCount());

        kvm.calls.clear();
        bells.close();
        assertEquals(2, kvm.calls.stream().filter(c -> !c.assign()).count());
        assertEquals(0, bells.assignedCount());
        // Later BAR events are ignored.
        guest.setBarAddress(0, 0xE002_0000L);
        assertEquals(2, kvm.calls.size());
        bells.close();
        // REGION_WRITE still works for the same doorbell.
        client.regionWrite(0, 0x100, 2, 3);
        client.flushPostedWrites();
        assertArrayEquals(new long[]{0x100, 2, 3}, writes.poll(5, TimeUnit.SECONDS));
    }

    @Test
    void aDoorbellKvmRefusesIsLeftToTrapAndTheOthersAreRegistered() {
        guest.setBarAddress(0, 0xE000_0000L);
        decode(true);
        kvm.refuse = 0xE000_0100L;
        try (VfioUserIoEventFds bells = VfioUserIoEventFds.attach(client, guest, kvm)) {
            assertEquals(1, bells.assignedCount(), "assigned at attach, the BAR decoding already");
            assertEquals(0xE000_0200L, kvm.calls.get(0).address());
        }
    }

    @Test
    void subRegionsTheClientCannotRegisterAreDropped() {
        int ioeventfd = vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD();
        int datamatch = RegionIoFds.KVM_IOEVENTFD_FLAG_DATAMATCH;
        assertNull(RegionIoFds.problem(new SubRegion(0xFF8, 8, 0, ioeventfd, datamatch, -1), 0x1000));
        assertNull(RegionIoFds.problem(new SubRegion(0xFFF, 0, 0, ioeventfd, 0, 0), 0x1000));
        List<SubRegion> bad = List.of(
                new SubRegion(0, 0, 0, vfio_user_h.VFIO_USER_IO_FD_TYPE_IOREGIONFD(), 0, 0),
                new SubRegion(0, 2, 0, ioeventfd, 2 /* KVM_IOEVENTFD_FLAG_PIO */, 0),
                new SubRegion(0, 3, 0, ioeventfd, 0, 0),
                new SubRegion(0, 16, 0, ioeventfd, 0, 0),
                new SubRegion(0, 0, 0, ioeventfd, datamatch, 1),
                new SubRegion(0, 1, 0, ioeventfd, datamatch, 0x100),
                new SubRegion(0xFFE, 4, 0, ioeventfd, 0, 0),
                new SubRegion(0x1000, 0, 0, ioeventfd, 0, 0),
                new SubRegion(-8, 4, 0, ioeventfd, 0, 0));
        for (SubRegion s : bad) {
            assertNotNull(RegionIoFds.problem(s, 0x1000), s.toString());
        }
    }
}
