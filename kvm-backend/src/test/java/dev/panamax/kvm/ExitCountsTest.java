package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.kvm.bindings.kvm_h;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class ExitCountsTest {
    static final BusDevice NOTHING = new BusDevice() {
        @Override
        public long read(long offset, int size) {
            return 0;
        }

        @Override
        public void write(long offset, int size, long value) {
        }
    };

    @Test
    void tableByReasonDeviceAndVcpu() {
        Bus pio = new Bus("pio");
        Bus mmio = new Bus("mmio");
        pio.register(0x3f8, 8, "com1", NOTHING);
        pio.register(0xcf8, 4, "pci-config-address", NOTHING);
        mmio.register(0xfebf0000L, 0x1000, "00:01.0 BAR0", NOTHING);
        ExitCounts v0 = new ExitCounts(), v1 = new ExitCounts();
        for (int i = 0; i < 1200; i++) { // what the vCPU loop does for each port exit
            v0.exit(kvm_h.KVM_EXIT_IO());
            pio.write(0x3f8, 1, 'x', v0.pio);
        }
        v0.exit(kvm_h.KVM_EXIT_IO());
        pio.read(0xcf8, 4, v0.pio);
        v1.exit(kvm_h.KVM_EXIT_IO());
        pio.read(0x80, 1, v1.pio); // nobody's
        for (int i = 0; i < 3; i++) {
            v1.exit(kvm_h.KVM_EXIT_MMIO());
            mmio.read(0xfebf0010L, 4, v1.mmio);
        }
        v1.exit(kvm_h.KVM_EXIT_HLT());
        v1.exit(200); // beyond the array
        v0.interrupted = 2;

        assertEquals(List.of(
                "VM exits                        all   vcpu0   vcpu1",
                "KVM_EXIT_IO                    1202    1201       1",
                "  pio com1                     1200    1200       0",
                "  pio pci-config-address          1       1       0",
                "  pio (unclaimed)                 1       0       1",
                "KVM_EXIT_HLT                      1       0       1",
                "KVM_EXIT_MMIO                     3       0       3",
                "  mmio 00:01.0 BAR0               3       0       3",
                "other exit reasons                1       0       1",
                "KVM_RUN interrupted (EINTR)       2       2       0",
                "total exits                    1207    1201       6"),
                ExitCounts.table(List.of(v0, v1), pio, mmio));
        assertEquals(1201, v0.total());
        assertEquals(6, v1.total());
        assertEquals(3, v1.exits(kvm_h.KVM_EXIT_MMIO()));
        assertEquals(0, v1.exits(200));
    }

    @Test
    void noExitsGiveJustTheTotal() {
        assertEquals(List.of("VM exits        all   vcpu0", "total exits       0       0"),
                ExitCounts.table(List.of(new ExitCounts()), new Bus("pio"), new Bus("mmio")));
    }

    @Test
    void reasonNamesAreKvmHs() {
        assertEquals("KVM_EXIT_IO", ExitCounts.reasonName(2));
        assertEquals("KVM_EXIT_HLT", ExitCounts.reasonName(5));
        assertEquals("KVM_EXIT_MMIO", ExitCounts.reasonName(6));
        assertEquals("KVM_EXIT_SHUTDOWN", ExitCounts.reasonName(8));
        assertEquals("KVM_EXIT_INTERNAL_ERROR", ExitCounts.reasonName(17));
        assertEquals("KVM_EXIT_SYSTEM_EVENT", ExitCounts.reasonName(24));
        assertEquals("exit reason 99", ExitCounts.reasonName(99));
    }

    @Test
    void msiMessagesInWords() {
        assertEquals("MSI address 0xfee01000 data 0x31 (APIC 1 physical, vector 0x31, fixed, edge)",
                KvmIrqRoutes.describeMsi(0xfee01000L, 0x31));
        assertEquals("MSI address 0xfee0200c data 0xc122 (APIC 2 logical RH, vector 0x22, lowest priority, level assert)",
                KvmIrqRoutes.describeMsi(0xfee0200cL, 0xc122));
        assertEquals("MSI address 0x100fee00000 data 0x400 (APIC 256 physical, vector 0x0, NMI, edge)",
                KvmIrqRoutes.describeMsi(0x100_fee00000L, 0x400));
    }
}
