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
    /** {@code --trace}: each route change, with the MSI message decoded. */
    private static final Logger trace = LoggerFactory.getLogger("dev.panamax.trace.irq");
    /** GSIs the IOAPIC's 24 pins take; MSI routes come after. */
    static final int IOAPIC_PINS = 24;
    /** {@code KVM_MAX_IRQ_ROUTES} on x86 ({@code arch/x86/include/asm/kvm_host.h}). */
    static final int MAX_ROUTES = 4096;

    /** The default irqchip entries: GSIs 0-15 twice (IOAPIC and PIC), 16-23 once. */
    static final int IRQCHIP_ENTRIES = 16 * 2 + (IOAPIC_PINS - 16);

    /** Where a whole table goes: {@code KVM_SET_GSI_ROUTING} on the VM fd (a fake in tests). */
    interface RoutingTable {
        /**
         * @param table   a {@code struct kvm_irq_routing} with its entries
         * @param entries its {@code nr}
         * @throws RuntimeException if KVM refuses it (then KVM's table is unchanged)
         */
        void set(MemorySegment table, int entries);
    }

    private final KvmVm vm;
    private final RoutingTable kvmTable;
    /** MSI routes: GSI -> {address, data}. */
    private final Map<Integer, long[]> msi = new TreeMap<>();

    KvmIrqRoutes(KvmVm vm) {
        this(vm, (table, n) -> Libc.ioctl(vm.fd(), kvm_h.KVM_SET_GSI_ROUTING(), table, "KVM_SET_GSI_ROUTING with " + n + " entries"));
    }

    KvmIrqRoutes(KvmVm vm, RoutingTable kvmTable) {
        this.vm = vm;
        this.kvmTable = kvmTable;
        commit();
    }

    @Override
    public synchronized int addMsiRoute(long address, int data) {
        int gsi = IOAPIC_PINS;
        while (msi.containsKey(gsi)) {
            gsi++;
        }
        // KVM refuses more than KVM_MAX_IRQ_ROUTES entries and any GSI at or above it (virt/kvm/irqchip.c).
        if (gsi >= MAX_ROUTES || IRQCHIP_ENTRIES + msi.size() >= MAX_ROUTES) {
            throw new IllegalStateException("KVM GSI routing table is full (" + MAX_ROUTES + " routes)");
        }
        msi.put(gsi, new long[]{address, Integer.toUnsignedLong(data)});
        try {
            commit();
        } catch (RuntimeException e) {
            msi.remove(gsi); // KVM kept its table: so does this one
            throw e;
        }
        if (trace.isTraceEnabled()) {
            trace.trace("KVM_SET_GSI_ROUTING add GSI {} -> {}", gsi, describeMsi(address, data));
        }
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
        long[] old = route.clone();
        route[0] = address;
        route[1] = Integer.toUnsignedLong(data);
        try {
            commit();
        } catch (RuntimeException e) {
            route[0] = old[0]; // KVM kept the old message
            route[1] = old[1];
            throw e;
        }
        if (trace.isTraceEnabled()) {
            trace.trace("KVM_SET_GSI_ROUTING update GSI {} -> {}", gsi, describeMsi(address, data));
        }
        log.debug("GSI {} -> MSI address 0x{} data 0x{}", gsi, Long.toHexString(address), Integer.toHexString(data));
    }

    @Override
    public synchronized void removeMsiRoute(int gsi) {
        if (msi.remove(gsi) != null) {
            commit();
            if (trace.isTraceEnabled()) {
                trace.trace("KVM_SET_GSI_ROUTING remove GSI {}", gsi);
            }
            log.debug("GSI {} removed", gsi);
        }
    }

    @Override
    public void bindIrqfd(int eventFd, int gsi) {
        if (trace.isTraceEnabled()) {
            trace.trace("KVM_IRQFD assign eventfd {} -> GSI {}", eventFd, gsi);
        }
        vm.assignIrqfd(eventFd, gsi);
    }

    @Override
    public void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
        if (trace.isTraceEnabled()) {
            trace.trace("KVM_IRQFD assign eventfd {} -> GSI {}, resample eventfd {}", eventFd, gsi, resampleFd);
        }
        vm.assignResampleIrqfd(eventFd, resampleFd, gsi);
    }

    @Override
    public void unbindIrqfd(int eventFd, int gsi) {
        if (trace.isTraceEnabled()) {
            trace.trace("KVM_IRQFD deassign eventfd {} from GSI {}", eventFd, gsi);
        }
        vm.deassignIrqfd(eventFd, gsi);
    }

    /**
     * An x86 MSI message in words (Intel SDM Vol. 3A, 11.11.1 and 11.11.2): address 0xFEEx_xxxx with the
     * destination APIC id in bits 19:12 (its bits 31:8 in address_hi bits 31:8, KVM's x2APIC form), RH bit 3, DM
     * bit 2 (logical); data with the vector in bits 7:0, the delivery mode in 10:8, level-assert bit 14, trigger
     * bit 15 (level).
     *
     * @return e.g. "MSI address 0xfee01000 data 0x4031 (APIC 1 physical, vector 0x31, fixed, edge)"
     */
    static String describeMsi(long address, int data) {
        long dest = (address >>> 12) & 0xFF | ((address >>> 32) & 0xFFFF_FF00L);
        String[] modes = {"fixed", "lowest priority", "SMI", "reserved 3", "NMI", "INIT", "reserved 6", "ExtINT"};
        return String.format("MSI address 0x%x data 0x%x (APIC %d %s%s, vector 0x%x, %s, %s)", address, data, dest,
                (address & 0x4) != 0 ? "logical" : "physical", (address & 0x8) != 0 ? " RH" : "", data & 0xFF,
                modes[(data >>> 8) & 7], (data & 0x8000) != 0 ? "level" + ((data & 0x4000) != 0 ? " assert" : " deassert") : "edge");
    }

    /** Sets the whole table: the default irqchip entries, then the MSI routes. */
    private void commit() {
        int n = IRQCHIP_ENTRIES + msi.size();
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
            kvmTable.set(table, n);
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
