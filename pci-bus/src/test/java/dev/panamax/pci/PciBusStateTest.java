package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.state.StateException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@link PciBus}'s snapshot: CONFIG_ADDRESS and the emulated functions' config space, refused when it does not fit. */
class PciBusStateTest {
    /** A bus as a machine builds it: the host bridge, one emulated function with a BAR, MSI and INTA#. */
    static final class Rig {
        final List<String> events = new ArrayList<>();
        final PciBus bus = new PciBus(gsi -> level -> events.add("gsi " + gsi + " " + level));
        final PciFunction nic = new PciFunction("nic", new PciConfigSpace(PciConfigSpace.SIZE));
        final BusDevice address = bus.configAddressPort();
        final BusDevice data = bus.configDataPort();

        Rig() {
            this(0x1234);
        }

        Rig(int deviceId) {
            nic.config().initHeader(0x1AF4, deviceId, 1, 0x020000, 0x1AF4, 1);
            nic.setBar(0, PciBar.memory32(0x1000), null);
            nic.setInterruptPin(1);
            new MsiCapability(nic, 4, true, new MsiListener() {
                @Override
                public void onVectorChanged(int vector, long a, int d, boolean masked) {
                    events.add("msi " + vector + " " + Long.toHexString(a) + " " + Integer.toHexString(d) + " " + masked);
                }

                @Override
                public void onMessage(int vector, long a, int d) {
                    events.add("message " + vector);
                }
            });
            nic.addBarListener(new BarListener() {
                @Override
                public void barMapped(PciFunction f, int index, PciBar bar, long at) {
                    events.add("map " + index + " " + Long.toHexString(at));
                }

                @Override
                public void barUnmapped(PciFunction f, int index, PciBar bar, long at) {
                    events.add("unmap " + index + " " + Long.toHexString(at));
                }
            });
            bus.attach(3, 0, nic);
        }

        void write(int slot, int register, int size, int value) {
            address.write(0, 4, PciBus.CONFIG_ENABLE | slot << 11 | (register & 0xFC));
            data.write(register & 3, size, value);
        }

        int read(int slot, int register) {
            address.write(0, 4, PciBus.CONFIG_ENABLE | slot << 11 | (register & 0xFC));
            return (int) data.read(0, 4);
        }

        /** Every dword of both functions' config space, then CONFIG_ADDRESS as left. */
        List<Integer> configDump(int latch) {
            var dump = new ArrayList<Integer>();
            for (int r = 0; r < PciConfigSpace.SIZE; r += 4) {
                dump.add(read(0, r));
                dump.add(read(3, r));
            }
            address.write(0, 4, latch);
            return dump;
        }
    }

    private static Rig programmed() {
        var a = new Rig();
        int msi = a.nic.config().findCapability(PciConfigSpace.CAP_ID_MSI);
        a.write(3, PciConfigSpace.BASE_ADDRESS_0, 4, 0xFEB0_0000);
        a.write(3, PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER);
        a.write(3, PciConfigSpace.LATENCY_TIMER, 1, 0x40);
        a.write(3, msi + MsiCapability.ADDRESS_LO, 4, 0xFEE0_1000);
        a.write(3, msi + MsiCapability.DATA_64, 2, 0x4021);
        a.write(3, msi + MsiCapability.FLAGS, 2, MsiCapability.FLAGS_ENABLE | 2 << 4);
        int exp = a.bus.hostBridge().expressCapability();
        a.write(0, exp + PciExpress.DEVCTL, 2, 0x5000 | 0x0F);
        a.nic.setIntx(true);
        a.address.write(0, 4, PciBus.CONFIG_ENABLE | 3 << 11 | 0x10); // the latch as the guest left it
        return a;
    }

    @Test
    void restoredBusReadsTheSameAndRebuildsBarsAndMsiRoutes() {
        Rig a = programmed();
        byte[] saved = a.bus.saveState();
        int latch = (int) a.address.read(0, 4);

        Rig b = new Rig();
        b.bus.restoreState(saved);
        assertEquals(latch, (int) b.address.read(0, 4), "CONFIG_ADDRESS");
        assertTrue(b.events.contains("map 0 feb00000"), b.events.toString());
        assertTrue(b.events.contains("msi 0 fee01000 4020 false"), b.events.toString());
        assertTrue(b.events.contains("msi 3 fee01000 4023 false"), b.events.toString());
        assertTrue(b.events.stream().noneMatch(e -> e.startsWith("gsi")), "INTx# is left to KVM_SET_IRQCHIP");
        assertEquals(0xFEB0_0000L, b.nic.decodedAddress(0));
        assertEquals(a.configDump(latch), b.configDump(latch));
        assertArrayEquals(saved, b.bus.saveState());

        // The restored INTx# level makes the next transition right: lowering it drives the line low.
        a.events.clear();
        b.events.clear();
        a.nic.setIntx(false);
        b.nic.setIntx(false);
        assertEquals(List.of("gsi 19 false"), b.events);
        assertEquals(a.events, b.events);
    }

    @Test
    void damagedStatesAreRefusedAndTheBusIsUnchanged() {
        byte[] good = programmed().bus.saveState();
        Rig b = new Rig();
        byte[] fresh = b.bus.saveState();
        for (int n = 0; n < good.length; n += (n < 64 ? 1 : 97)) {
            byte[] prefix = Arrays.copyOf(good, n);
            var e = assertThrows(StateException.class, () -> b.bus.restoreState(prefix));
            assertTrue(e.getMessage().startsWith("pci state: "), e.getMessage());
        }
        byte[] future = good.clone();
        future[4] = 2;
        assertThrows(StateException.class, () -> b.bus.restoreState(future));
        byte[] trailing = Arrays.copyOf(good, good.length + 1);
        assertThrows(StateException.class, () -> b.bus.restoreState(trailing));
        byte[] reserved = good.clone();
        reserved[6] |= 1; // CONFIG_ADDRESS bit 0
        assertThrows(StateException.class, () -> b.bus.restoreState(reserved));
        byte[] lastDamaged = good.clone();
        lastDamaged[lastDamaged.length - 1] = 2; // the nic's INTx# level: applied functions before it must not change
        assertThrows(StateException.class, () -> b.bus.restoreState(lastDamaged));
        assertArrayEquals(fresh, b.bus.saveState());
        assertEquals(List.of(), b.events);
    }

    @Test
    void anotherSetOfFunctionsIsRefused() {
        byte[] good = programmed().bus.saveState();
        var other = new Rig(0x5678);
        var e = assertThrows(StateException.class, () -> other.bus.restoreState(good));
        assertTrue(e.getMessage().contains("1af4:1234"), e.getMessage());
        var bare = new PciBus(null);
        var missing = assertThrows(StateException.class, () -> bare.restoreState(good));
        assertEquals("pci state: 00:03.0 holds nic in the snapshot, nothing on this bus", missing.getMessage());
        var extra = new Rig();
        extra.bus.attach(5, 0, new PciFunction("extra", new PciConfigSpace(PciConfigSpace.SIZE)));
        assertThrows(StateException.class, () -> extra.bus.restoreState(good));
    }

    @Test
    void functionsOfOtherKindsAreNamedButNotSaved() {
        var bus = new PciBus(null);
        var owned = new PciFunction("assigned", new PciConfigSpace(PciConfigSpace.SIZE)) { };
        bus.attach(4, 0, owned);
        byte[] saved = bus.saveState();
        var copy = new PciBus(null);
        copy.attach(4, 0, new PciFunction("assigned", new PciConfigSpace(PciConfigSpace.SIZE)) { });
        copy.restoreState(saved);
        var plain = new PciBus(null);
        plain.attach(4, 0, new PciFunction("assigned", new PciConfigSpace(PciConfigSpace.SIZE)));
        assertThrows(StateException.class, () -> plain.restoreState(saved));
    }
}
