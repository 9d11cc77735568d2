package dev.panamax.kvm;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.sys.Libc;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_irq_routing;
import dev.panamax.kvm.bindings.kvm_irq_routing_entry;
import dev.panamax.kvm.bindings.kvm_irq_routing_irqchip;
import dev.panamax.kvm.bindings.kvm_irq_routing_msi;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

/**
 * KVM's GSI routing table for one VM ({@code KVM_SET_GSI_ROUTING}, api.rst 4.52) and its irqfds
 * ({@code KVM_IRQFD}, 4.75).
 *
 * <p>The table replaces KVM's whole default one each time it is set, so it always starts with the default
 * irqchip entries, exactly as {@code default_routing} in {@code arch/x86/kvm/irq_comm.c} has them: GSIs 0-15 to
 * the IOAPIC pin of the same number and to the PIC (master for 0-7, slave for 8-15, pin = GSI mod 8), GSIs 16-23
 * to the IOAPIC alone. MSI routes take GSIs from 24 up; each change sets the whole table again (a handful of
 * entries, done when the guest programs a vector, never on the interrupt path).
 */
final class KvmIrqRoutes implements IrqRoutes {
    private static final Logger log = LoggerFactory.getLogger(KvmIrqRoutes.class);
    /** GSIs the IOAPIC's 24 pins take; MSI routes come after. */
    static final int IOAPIC_PINS = 24;
    /** {@code KVM_MAX_IRQ_ROUTES} on x86 ({@code arch/x86/include/asm/kvm_host.h}). */
    static final int MAX_ROUTES = 4096;

    private final KvmVm vm;
    /** MSI routes: GSI -> {address, data}. */
    private final Map<Integer, long[]> msi = new TreeMap<>();

    KvmIrqRoutes(KvmVm vm) {
        this.vm = vm;
        commit();
    }

    @Override
    public synchronized int addMsiRoute(long address, int data) {
        int gsi = IOAPIC_PINS;
        while (msi.containsKey(gsi)) {
            gsi++;
        }
        if (gsi >= MAX_ROUTES) {
            throw new IllegalStateException("KVM GSI routing table is full (" + MAX_ROUTES + " routes)");
        }
        msi.put(gsi, new long[]{address, Integer.toUnsignedLong(data)});
        commit();
        log.debug("GSI {} -> MSI address 0x{} data 0x{}", gsi, Long.toHexString(address), Integer.toHexString(data));
        return gsi;
    }

    @Override
    public synchronized void updateMsiRoute(int gsi, long address, int data) {
        long[] route = msi.get(gsi);
        if (route == null) {
            throw new IllegalArgumentException("GSI " + gsi + " is not an MSI route");
        }
        if (route[0] == address && route[1] == Integer.toUnsignedLong(data)) {
            return;
        }
        route[0] = address;
        route[1] = Integer.toUnsignedLong(data);
        commit();
        log.debug("GSI {} -> MSI address 0x{} data 0x{}", gsi, Long.toHexString(address), Integer.toHexString(data));
    }

    @Override
    public synchronized void removeMsiRoute(int gsi) {
        if (msi.remove(gsi) != null) {
            commit();
            log.debug("GSI {} removed", gsi);
        }
    }

    @Override
    public void bindIrqfd(int eventFd, int gsi) {
        vm.assignIrqfd(eventFd, gsi);
    }

    @Override
    public void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
        vm.assignResampleIrqfd(eventFd, resampleFd, gsi);
    }

    @Override
    public void unbindIrqfd(int eventFd, int gsi) {
        vm.deassignIrqfd(eventFd, gsi);
    }

    /** Sets the whole table: the default irqchip entries, then the MSI routes. */
    private void commit() {
        int irqchipEntries = 16 * 2 + (IOAPIC_PINS - 16);
        int n = irqchipEntries + msi.size();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment table = arena.allocate(kvm_irq_routing.sizeof() + n * kvm_irq_routing_entry.sizeof(), 8);
            kvm_irq_routing.nr(table, n);
            int i = 0;
            for (int gsi = 0; gsi < IOAPIC_PINS; gsi++) {
                irqchip(kvm_irq_routing.entries(table, i++), gsi, kvm_h.KVM_IRQCHIP_IOAPIC(), gsi);
                if (gsi < 16) {
                    int pic = gsi < 8 ? kvm_h.KVM_IRQCHIP_PIC_MASTER() : kvm_h.KVM_IRQCHIP_PIC_SLAVE();
                    irqchip(kvm_irq_routing.entries(table, i++), gsi, pic, gsi % 8);
                }
            }
            for (var route : msi.entrySet()) {
                MemorySegment e = kvm_irq_routing.entries(table, i++);
                kvm_irq_routing_entry.gsi(e, route.getKey());
                kvm_irq_routing_entry.type(e, kvm_h.KVM_IRQ_ROUTING_MSI());
                MemorySegment m = kvm_irq_routing_entry.u_msi(e);
                kvm_irq_routing_msi.address_lo(m, (int) route.getValue()[0]);
                kvm_irq_routing_msi.address_hi(m, (int) (route.getValue()[0] >>> 32));
                kvm_irq_routing_msi.data(m, (int) route.getValue()[1]);
            }
            Libc.ioctl(vm.fd(), kvm_h.KVM_SET_GSI_ROUTING(), table, "KVM_SET_GSI_ROUTING with " + n + " entries");
        }
    }

    private static void irqchip(MemorySegment entry, int gsi, int chip, int pin) {
        kvm_irq_routing_entry.gsi(entry, gsi);
        kvm_irq_routing_entry.type(entry, kvm_h.KVM_IRQ_ROUTING_IRQCHIP());
        MemorySegment c = kvm_irq_routing_entry.u_irqchip(entry);
        kvm_irq_routing_irqchip.irqchip(c, chip);
        kvm_irq_routing_irqchip.pin(c, pin);
    }
}
