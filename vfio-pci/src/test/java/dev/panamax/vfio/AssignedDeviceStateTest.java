package dev.panamax.vfio;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.state.StateException;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An assigned device's client state ({@code ASGN} v1, {@link AssignedDeviceState}): saved from one attached device and
 * restored into a freshly attached one, the BARs, command register, MSI-X table and interrupts come back through the
 * usual paths (BAR listeners, config write hooks, GSI routes and irqfds); a state that is not this device's is refused
 * with the device unchanged. The device is {@link VfioPciFunctionTest#nic()} (MSI, MSI-X with 64 vectors in BAR 3, INTA#).
 */
class AssignedDeviceStateTest {
    private static final int CONFIG = vfio_h.VFIO_PCI_CONFIG_REGION_INDEX();

    /** One attached device with its fake VFIO device, VM routes and the BAR placements it was told. */
    static final class Rig implements AutoCloseable {
        final FakeVfioDevice device;
        final VfioInterruptsTest.RoutesLog routes = new VfioInterruptsTest.RoutesLog();
        final List<String> bars = new ArrayList<>();
        final AssignedPciDevice assigned;

        Rig(FakeVfioDevice device) {
            this.device = device;
            BarListener trapping = new BarListener() {
                @Override
                public void barMapped(PciFunction function, int index, PciBar bar, long address) {
                    bars.add("map " + index + " 0x" + Long.toHexString(address));
                }

                @Override
                public void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
                    bars.add("unmap " + index + " 0x" + Long.toHexString(address));
                }
            };
            assigned = AssignedPciDevice.attach(device, new PciBus(gsi -> level -> { }), new AddressSpace(), routes, trapping,
                    new PciBarAllocator(0xC000_0000L, 0xE000_0000L, 1L << 36, 1L << 40));
        }

        VfioPciFunction f() {
            return assigned.function();
        }

        @Override
        public void close() {
            assigned.close();
        }
    }

    private final List<Rig> rigs = new ArrayList<>();

    private Rig rig(FakeVfioDevice d) {
        Rig r = new Rig(d);
        rigs.add(r);
        return r;
    }

    @AfterEach
    void closeAll() {
        rigs.forEach(Rig::close);
    }

    /** The guest as Linux drives the nic: BARs moved, memory and bus master on, MSI-X with three vectors unmasked. */
    private static void program(Rig r) {
        VfioPciFunction f = r.f();
        f.configWrite(0x10, 4, 0xD000_0000);
        f.configWrite(0x1c, 4, 0x0);
        f.configWrite(0x20, 4, 0x8);
        f.configWrite(0x04, 2, 0x0006);
        f.configWrite(0x72, 2, 0xC000);
        var bar = f.region(3);
        for (int v = 0; v < 3; v++) {
            bar.write(0x2000 + 16L * v, 4, 0xFEE0_0000L | v << 12);
            bar.write(0x2000 + 16L * v + 8, 4, 0x40 + v);
            bar.write(0x2000 + 16L * v + 12, 4, 0);
        }
        f.configWrite(0x72, 2, 0x8000);
    }

    @Test
    void aRestoredDeviceHasTheGuestsBarsTableRoutesAndIrqfds() {
        Rig source = rig(VfioPciFunctionTest.nic());
        program(source);
        assertEquals(VfioInterrupts.Mode.MSIX, source.assigned.interrupts().mode());
        byte[] saved = source.assigned.saveState();

        Rig target = rig(VfioPciFunctionTest.nic());
        target.routes.calls.clear();
        target.bars.clear();
        target.device.writes.clear();
        target.assigned.restoreState(saved);

        VfioPciFunction f = target.f();
        assertEquals(0xD000_0000, f.configRead(0x10, 4));
        assertEquals(source.f().configRead(0x1c, 4), f.configRead(0x1c, 4));
        assertEquals(source.f().configRead(0x20, 4), f.configRead(0x20, 4));
        assertTrue(target.bars.contains("map 0 0xd0000000"), target.bars.toString());
        assertEquals(VfioInterrupts.Mode.MSIX, target.assigned.interrupts().mode());
        assertArrayEquals(source.f().msix().tableWords(), f.msix().tableWords());
        // Three vectors: a route and an irqfd each, made by the hooks as the guest's writes made them.
        assertEquals(6, target.routes.live.size(), target.routes.live.toString());
        assertTrue(target.routes.calls.contains("add 24 0xfee00000 0x40"), target.routes.calls.toString());
        // The device got the command register and the MSI-X message control, as the guest wrote them.
        assertEquals(0x0006, target.device.get(CONFIG, 0x04, 2));
        assertEquals(0x8000, target.device.get(CONFIG, 0x72, 2) & 0xC000);
        // Saving the restored device gives the same bytes.
        assertArrayEquals(saved, target.assigned.saveState());
    }

    @Test
    void aDeviceWithoutMsixEnabledComesBackOnIntx() {
        Rig source = rig(VfioPciFunctionTest.nic());
        source.f().configWrite(0x04, 2, 0x0002);
        byte[] saved = source.assigned.saveState();
        Rig target = rig(VfioPciFunctionTest.nic());
        target.assigned.restoreState(saved);
        assertEquals(VfioInterrupts.Mode.INTX, target.assigned.interrupts().mode());
        assertArrayEquals(saved, target.assigned.saveState());
    }

    private static void refusedUnchanged(Rig target, byte[] state, String expect) {
        byte[] before = target.assigned.saveState();
        int writes = target.device.writes.size();
        int calls = target.routes.calls.size();
        StateException e = assertThrows(StateException.class, () -> target.assigned.restoreState(state));
        assertTrue(e.getMessage().startsWith("fake state: "), e.getMessage());
        assertTrue(e.getMessage().contains(expect), e.getMessage());
        assertArrayEquals(before, target.assigned.saveState());
        assertEquals(writes, target.device.writes.size(), "the device was written");
        assertEquals(calls, target.routes.calls.size(), "routes changed");
    }

    @Test
    void everyTruncationAndTrailingByteIsRefusedWithTheDeviceUnchanged() {
        Rig source = rig(VfioPciFunctionTest.nic());
        program(source);
        byte[] saved = source.assigned.saveState();
        Rig target = rig(VfioPciFunctionTest.nic());
        for (int n = 0; n < saved.length; n++) {
            refusedUnchanged(target, Arrays.copyOf(saved, n), "");
        }
        refusedUnchanged(target, Arrays.copyOf(saved, saved.length + 1), "");
        refusedUnchanged(target, null, "no state");
    }

    @Test
    void anotherDeviceTagVersionVectorCountOrReservedBitIsRefused() {
        Rig source = rig(VfioPciFunctionTest.nic());
        program(source);
        byte[] saved = source.assigned.saveState();
        Rig target = rig(VfioPciFunctionTest.nic());

        byte[] tag = saved.clone();
        tag[0] = 'X';
        refusedUnchanged(target, tag, "tag");
        byte[] future = saved.clone();
        future[4] = 2;
        refusedUnchanged(target, future, "version 2 is newer");
        byte[] other = saved.clone();
        other[8] = 0x11; // device id 0x10d3 -> 0x1011
        refusedUnchanged(target, other, "the snapshot's device is 8086:");
        byte[] mode = saved.clone();
        mode[10] = 9;
        refusedUnchanged(target, mode, "interrupt mode");
        // The vector count sits after the config state: header 6, id 4, mode 1, command 2, size 2, config 256, INTx 1.
        int vectorsAt = 6 + 4 + 1 + 2 + 2 + 256 + 1;
        byte[] vectors = saved.clone();
        ByteBuffer.wrap(vectors).order(ByteOrder.LITTLE_ENDIAN).putShort(vectorsAt, (short) 63);
        refusedUnchanged(target, vectors, "63 MSI-X vectors, this device 64");
        byte[] reserved = saved.clone();
        reserved[vectorsAt + 2 + 12 + 1] = 1; // vector 0's control, bit 8
        refusedUnchanged(target, reserved, "reserved bits");

        FakeVfioDevice d = VfioPciFunctionTest.nic();
        d.set(0x02, 2, 0x10d4);
        refusedUnchanged(rig(d), saved, "is 8086:10d3, this one 8086:10d4");
    }

    @Test
    void interruptsThatDoNotComeBackFailTheRestore() {
        Rig source = rig(VfioPciFunctionTest.nic());
        program(source);
        byte[] saved = source.assigned.saveState();
        FakeVfioDevice d = VfioPciFunctionTest.nic();
        d.refuseIrqSet = set -> set.index() == vfio_h.VFIO_PCI_MSIX_IRQ_INDEX() && set.count() > 0;
        Rig target = rig(d);
        StateException e = assertThrows(StateException.class, () -> target.assigned.restoreState(saved));
        assertTrue(e.getMessage().contains("interrupts are INTX after the restore, MSIX in the snapshot"), e.getMessage());
    }
}
