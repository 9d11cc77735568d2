package dev.panamax.vfio;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.sys.OpenFds;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * How an assigned device's interrupts are wired as the guest programs them: which VFIO SET_IRQS go to the device
 * and which GSI routes and irqfds the VM gets. The device is {@link FakeVfioDevice#nic()} (MSI with 4 vectors,
 * MSI-X with 64 in BAR 3, INTA#); the VM side is a log of {@link IrqRoutes} calls. Real eventfds are created and
 * must all be closed again.
 */
class VfioInterruptsTest {
    private static final int INTX = vfio_h.VFIO_PCI_INTX_IRQ_INDEX();
    private static final int MSI = vfio_h.VFIO_PCI_MSI_IRQ_INDEX();
    private static final int MSIX = vfio_h.VFIO_PCI_MSIX_IRQ_INDEX();
    private static final int TRIGGER_EVENTFD = vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER() | vfio_h.VFIO_IRQ_SET_DATA_EVENTFD();
    private static final int UNMASK_EVENTFD = vfio_h.VFIO_IRQ_SET_ACTION_UNMASK() | vfio_h.VFIO_IRQ_SET_DATA_EVENTFD();
    private static final int DISABLE = vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER() | vfio_h.VFIO_IRQ_SET_DATA_NONE();

    /** The VM side: what the wiring asked for, as text. */
    static final class RoutesLog implements IrqRoutes {
        final List<String> calls = new ArrayList<>();
        int nextGsi = 24;
        /** The MSI routes and irqfds in place now ("gsi", "fdN gsi"). */
        final java.util.Set<String> live = new java.util.TreeSet<>();
        /** When true, the table refuses new routes (KVM_SET_GSI_ROUTING failing, or no GSI left). */
        boolean full;
        /** When true, KVM_IRQFD assign fails. */
        boolean refuseIrqfd;

        @Override
        public int addMsiRoute(long address, int data) {
            calls.add("add " + nextGsi + " 0x" + Long.toHexString(address) + " 0x" + Integer.toHexString(data));
            if (full) {
                throw new IllegalStateException("fake: KVM GSI routing table is full");
            }
            live.add(String.valueOf(nextGsi));
            return nextGsi++;
        }

        @Override
        public void updateMsiRoute(int gsi, long address, int data) {
            calls.add("update " + gsi + " 0x" + Long.toHexString(address) + " 0x" + Integer.toHexString(data));
        }

        @Override
        public void removeMsiRoute(int gsi) {
            calls.add("remove " + gsi);
            live.remove(String.valueOf(gsi));
        }

        @Override
        public void bindIrqfd(int eventFd, int gsi) {
            calls.add("bind fd" + eventFd + " " + gsi);
            if (refuseIrqfd) {
                throw new IllegalStateException("fake: KVM_IRQFD refused");
            }
            live.add("fd" + eventFd + " " + gsi);
        }

        @Override
        public void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
            calls.add("bind fd" + eventFd + " resample fd" + resampleFd + " " + gsi);
            if (refuseIrqfd) {
                throw new IllegalStateException("fake: KVM_IRQFD refused");
            }
            live.add("fd" + eventFd + " " + gsi);
        }

        @Override
        public void unbindIrqfd(int eventFd, int gsi) {
            calls.add("unbind fd" + eventFd + " " + gsi);
            live.remove("fd" + eventFd + " " + gsi);
        }
    }

    private final FakeVfioDevice device = VfioPciFunctionTest.nic();
    private final RoutesLog routes = new RoutesLog();
    private final VfioInterrupts irqs = new VfioInterrupts(device, routes);
    private final VfioPciFunction function = new VfioPciFunction(device, irqs);

    VfioInterruptsTest() {
        irqs.attach(function);
    }

    private void msixEntry(int vector, long address, int data, boolean masked) {
        var bar = function.region(3);
        bar.write(0x2000 + 16L * vector, 4, address);
        bar.write(0x2000 + 16L * vector + 4, 4, address >>> 32);
        bar.write(0x2000 + 16L * vector + 8, 4, data);
        bar.write(0x2000 + 16L * vector + 12, 4, masked ? 1 : 0);
    }

    private static long openFds() {
        return OpenFds.byNumber().size();
    }

    @Test
    void intxIsAResampleIrqfdWhoseResampleFdIsVfiosUnmask() {
        long fds = openFds();
        irqs.connectIntx(17);
        assertEquals(VfioInterrupts.Mode.INTX, irqs.mode());
        assertEquals(2, device.irqSets.size());
        VfioIrqSet trigger = device.irqSets.get(0);
        VfioIrqSet unmask = device.irqSets.get(1);
        assertEquals(List.of(TRIGGER_EVENTFD, INTX, 1), List.of(trigger.flags(), trigger.index(), trigger.count()));
        assertEquals(List.of(UNMASK_EVENTFD, INTX, 1), List.of(unmask.flags(), unmask.index(), unmask.count()));
        assertEquals(List.of("bind fd" + trigger.eventfds()[0] + " resample fd" + unmask.eventfds()[0] + " 17"), routes.calls);
        irqs.close();
        assertEquals(DISABLE, device.irqSets.getLast().flags());
        assertEquals(INTX, device.irqSets.getLast().index());
        assertEquals("unbind fd" + trigger.eventfds()[0] + " 17", routes.calls.getLast());
        assertEquals(fds, openFds(), "eventfds left open");
    }

    @Test
    void msixReplacesIntxAndEachUnmaskedVectorGetsARouteAndAnIrqfd() {
        long fds = openFds();
        irqs.connectIntx(17);
        device.irqSets.clear();
        routes.calls.clear();

        // Linux: enable with the function masked, program the entries, then clear the function mask.
        function.configWrite(0x72, 2, 0xC000);
        assertEquals(VfioInterrupts.Mode.MSIX, irqs.mode());
        assertEquals(INTX, device.irqSets.get(0).index());
        assertEquals(DISABLE, device.irqSets.get(0).flags(), "INTx goes off before MSI-X comes on");
        VfioIrqSet vectors = device.irqSets.get(1);
        assertEquals(List.of(TRIGGER_EVENTFD, MSIX, 0, 64), List.of(vectors.flags(), vectors.index(), vectors.start(), vectors.count()));
        assertTrue(routes.calls.getFirst().startsWith("unbind fd"), routes.calls.toString());
        routes.calls.clear();
        msixEntry(5, 0xFEE0_0000L, 0x41, false);
        assertEquals(List.of(), routes.calls, "the function mask still holds every vector");
        function.configWrite(0x72, 2, 0x8000);
        int fd5 = vectors.eventfds()[5];
        assertEquals(List.of("add 24 0xfee00000 0x41", "bind fd" + fd5 + " 24"), routes.calls);

        // Masked: the irqfd goes (the eventfd keeps counting: the pending state); unmasked: it comes back.
        routes.calls.clear();
        function.region(3).write(0x2000 + 16 * 5 + 12, 4, 1);
        assertEquals(List.of("unbind fd" + fd5 + " 24"), routes.calls);
        routes.calls.clear();
        msixEntry(5, 0xFEE0_1000L, 0x42, false);
        assertEquals(List.of("update 24 0xfee01000 0x42", "bind fd" + fd5 + " 24"), routes.calls);

        // Linux's shutdown masks every vector, then clears enable: no vector changes at that write, yet INTx returns.
        routes.calls.clear();
        device.irqSets.clear();
        function.region(3).write(0x2000 + 16 * 5 + 12, 4, 1);
        function.configWrite(0x72, 2, 0x0000);
        assertEquals(VfioInterrupts.Mode.INTX, irqs.mode());
        assertEquals(List.of(MSIX, INTX, INTX), device.irqSets.stream().map(VfioIrqSet::index).toList());
        assertEquals(DISABLE, device.irqSets.getFirst().flags());
        assertEquals("unbind fd" + fd5 + " 24", routes.calls.get(0));
        assertEquals("remove 24", routes.calls.get(1));
        assertTrue(routes.calls.get(2).endsWith(" 17") && routes.calls.get(2).contains("resample"), routes.calls.toString());
        irqs.close();
        assertEquals(fds, openFds(), "eventfds left open");
    }

    @Test
    void msiEnablesTheVectorsTheGuestEnabled() {
        long fds = openFds();
        // MSI at 0x50 (64-bit, maskable, 4 vectors): address, data, mask bits, then enable with MME = 2 (4 vectors).
        function.configWrite(0x54, 4, 0xFEE0_0000);
        function.configWrite(0x58, 4, 0);
        function.configWrite(0x5C, 2, 0x60);
        function.configWrite(0x60, 4, 0b1110);
        function.configWrite(0x52, 2, 0x0021);
        assertEquals(VfioInterrupts.Mode.MSI, irqs.mode());
        VfioIrqSet set = device.irqSets.getLast();
        assertEquals(List.of(TRIGGER_EVENTFD, MSI, 4), List.of(set.flags(), set.index(), set.count()));
        assertEquals(List.of("add 24 0xfee00000 0x60", "bind fd" + set.eventfds()[0] + " 24"), routes.calls);
        irqs.close();
        assertEquals(VfioInterrupts.Mode.NONE, irqs.mode());
        assertEquals(fds, openFds(), "eventfds left open");
    }

    /** Linux's MSI-X enable: function masked, entry 5 programmed and unmasked, then the function mask cleared. */
    private void enableMsixWithVector5() {
        function.configWrite(0x72, 2, 0xC000);
        msixEntry(5, 0xFEE0_0000L, 0x41, false);
        function.configWrite(0x72, 2, 0x8000);
    }

    @Test
    void aRefusedMsixSetIrqsClosesItsEventfdsAndLeavesIntxOn() {
        long fds = openFds();
        irqs.connectIntx(17);
        long withIntx = openFds();
        device.refuseIrqSet = set -> set.index() == MSIX && set.count() > 0;

        enableMsixWithVector5(); // no exception reaches the guest's config write
        assertEquals(VfioInterrupts.Mode.INTX, irqs.mode(), "the mode it had before");
        assertEquals(withIntx, openFds(), "the 64 vector eventfds are closed again");
        assertEquals(1, routes.live.size(), "only INTx's irqfd: " + routes.live);
        assertTrue(routes.live.iterator().next().endsWith(" 17"), routes.live.toString());
        assertEquals(INTX, device.irqSets.getLast().index(), "INTx was given back to the device");

        // The device recovers; the guest's driver disables MSI-X and enables it again: it works.
        device.refuseIrqSet = set -> false;
        function.configWrite(0x72, 2, 0x0000);
        assertEquals(VfioInterrupts.Mode.INTX, irqs.mode());
        enableMsixWithVector5();
        assertEquals(VfioInterrupts.Mode.MSIX, irqs.mode());
        VfioIrqSet vectors = device.irqSets.stream().filter(s -> s.index() == MSIX && s.count() == 64).toList().getLast();
        assertEquals(java.util.Set.of("24", "fd" + vectors.eventfds()[5] + " 24"), routes.live);
        irqs.close();
        assertEquals(java.util.Set.of(), routes.live);
        assertEquals(fds, openFds(), "eventfds left open");
    }

    @Test
    void aRefusedIntxUnmaskUndoesTheIrqfdAndTheTrigger() {
        long fds = openFds();
        device.refuseIrqSet = set -> set.index() == INTX && set.flags() == UNMASK_EVENTFD;
        irqs.connectIntx(17);
        assertEquals(VfioInterrupts.Mode.NONE, irqs.mode());
        assertEquals(java.util.Set.of(), routes.live);
        assertEquals(fds, openFds(), "eventfds left open");
        assertEquals(DISABLE, device.irqSets.getLast().flags(), "the trigger given to VFIO is taken back");

        device.refuseIrqSet = set -> false;
        function.configWrite(0x52, 2, 0x0001); // MSI on, then off again: INTx is tried again
        function.configWrite(0x52, 2, 0x0000);
        assertEquals(VfioInterrupts.Mode.INTX, irqs.mode());
        irqs.close();
        assertEquals(fds, openFds(), "eventfds left open");
    }

    @Test
    void aFullRoutingTableLeavesTheVectorUnroutedAndTheModeOn() {
        long fds = openFds();
        routes.full = true;
        enableMsixWithVector5();
        assertEquals(VfioInterrupts.Mode.MSIX, irqs.mode(), "MSI-X stays on: only the vector has no route");
        assertEquals(java.util.Set.of(), routes.live, "no route, no irqfd");

        // A slot frees up; the guest masks and unmasks the vector again: it gets its route.
        routes.full = false;
        function.region(3).write(0x2000 + 16 * 5 + 12, 4, 1);
        msixEntry(5, 0xFEE0_0000L, 0x41, false);
        assertEquals(2, routes.live.size(), routes.live.toString());
        irqs.close();
        assertEquals(java.util.Set.of(), routes.live);
        assertEquals(fds, openFds(), "eventfds left open");
    }

    @Test
    void aRefusedIrqfdRemovesTheRouteAddedForIt() {
        routes.refuseIrqfd = true;
        enableMsixWithVector5();
        assertEquals(VfioInterrupts.Mode.MSIX, irqs.mode());
        assertEquals(java.util.Set.of(), routes.live, "the route added for the irqfd is removed again");
        irqs.close();
    }

    @Test
    void aRefusedDisableStillClosesEverything() {
        long fds = openFds();
        enableMsixWithVector5();
        device.refuseIrqSet = set -> set.count() == 0;
        irqs.close();
        assertEquals(VfioInterrupts.Mode.NONE, irqs.mode());
        assertEquals(java.util.Set.of(), routes.live);
        assertEquals(fds, openFds(), "eventfds left open");
    }
}
