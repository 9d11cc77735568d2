package dev.panamax.kvm;

import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_irq_routing;
import dev.panamax.kvm.bindings.kvm_irq_routing_entry;
import dev.panamax.kvm.bindings.kvm_irq_routing_msi;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KvmIrqRoutes} against a fake {@code KVM_SET_GSI_ROUTING}: what KVM's table holds after each call, and
 * that a table KVM refuses (or one that would be too big) leaves this object's routes as KVM's stayed.
 */
class KvmIrqRoutesTest {
    /** The last table KVM accepted: MSI GSI -> address_lo; and its entry count. */
    private final Map<Integer, Long> kvm = new TreeMap<>();
    private int kvmEntries;
    private boolean refuse;

    private final KvmIrqRoutes routes = new KvmIrqRoutes(null, this::set);

    private void set(MemorySegment table, int n) {
        assertEquals(n, kvm_irq_routing.nr(table));
        if (n > KvmIrqRoutes.MAX_ROUTES) {
            throw new LinuxException("KVM_SET_GSI_ROUTING with " + n + " entries", 22);
        }
        if (refuse) {
            throw new LinuxException("KVM_SET_GSI_ROUTING with " + n + " entries", 12);
        }
        kvm.clear();
        for (int i = 0; i < n; i++) {
            MemorySegment e = kvm_irq_routing.entries(table, i);
            int gsi = kvm_irq_routing_entry.gsi(e);
            assertTrue(gsi < KvmIrqRoutes.MAX_ROUTES, "GSI " + gsi);
            if (kvm_irq_routing_entry.type(e) == kvm_h.KVM_IRQ_ROUTING_MSI()) {
                kvm.put(gsi, Integer.toUnsignedLong(kvm_irq_routing_msi.address_lo(kvm_irq_routing_entry.u_msi(e))));
            }
        }
        kvmEntries = n;
    }

    @Test
    void aRefusedAddLeavesNoRouteBehind() {
        assertEquals(24, routes.addMsiRoute(0xFEE0_0000L, 0x41));
        refuse = true;
        assertThrows(LinuxException.class, () -> routes.addMsiRoute(0xFEE0_1000L, 0x42));
        refuse = false;
        assertEquals(25, routes.addMsiRoute(0xFEE0_2000L, 0x43), "the refused GSI is free again");
        assertEquals(Map.of(24, 0xFEE0_0000L, 25, 0xFEE0_2000L), kvm);
        assertEquals(KvmIrqRoutes.IRQCHIP_ENTRIES + 2, kvmEntries);
    }

    @Test
    void aRefusedUpdateKeepsTheOldMessage() {
        routes.addMsiRoute(0xFEE0_0000L, 0x41);
        refuse = true;
        assertThrows(LinuxException.class, () -> routes.updateMsiRoute(24, 0xFEE0_1000L, 0x41));
        refuse = false;
        routes.addMsiRoute(0xFEE0_2000L, 0x43); // sets the whole table again
        assertEquals(Map.of(24, 0xFEE0_0000L, 25, 0xFEE0_2000L), kvm, "KVM's and this table agree");
        routes.updateMsiRoute(24, 0xFEE0_1000L, 0x41);
        assertEquals(0xFEE0_1000L, kvm.get(24), "the same update works once KVM takes it");
    }

    @Test
    void aFullTableIsRefusedBeforeKvmIs() {
        int added = 0;
        while (true) {
            try {
                routes.addMsiRoute(0xFEE0_0000L, added++);
            } catch (IllegalStateException e) {
                assertTrue(e.getMessage().contains("full"), e.getMessage());
                break;
            }
        }
        assertEquals(KvmIrqRoutes.MAX_ROUTES, kvmEntries, "KVM_MAX_IRQ_ROUTES entries, not one more");
        routes.removeMsiRoute(100);
        assertEquals(100, routes.addMsiRoute(0xFEE0_0000L, 0), "a freed GSI is given again");
    }
}
