package dev.panamax.kvm;

import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_ioeventfd;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@code struct kvm_ioeventfd} as {@link KvmVm#assignIoeventfd} fills it (linux/kvm.h; api.rst 4.59). No /dev/kvm needed. */
class IoeventfdStructTest {

    @Test
    void datamatchAssignAndLengthZeroDeassign() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_ioeventfd.allocate(arena);
            KvmVm.fillIoeventfd(s, 0xFE003000L, 2, OptionalLong.of(3), 42, false);
            assertEquals(0xFE003000L, kvm_ioeventfd.addr(s));
            assertEquals(2, kvm_ioeventfd.len(s));
            assertEquals(42, kvm_ioeventfd.fd(s));
            assertEquals(3, kvm_ioeventfd.datamatch(s));
            assertEquals(kvm_h.KVM_IOEVENTFD_FLAG_DATAMATCH(), kvm_ioeventfd.flags(s));

            MemorySegment d = kvm_ioeventfd.allocate(arena);
            KvmVm.fillIoeventfd(d, 0x1000, 0, OptionalLong.empty(), 7, true);
            assertEquals(0, kvm_ioeventfd.len(d));
            assertEquals(0, kvm_ioeventfd.datamatch(d));
            assertEquals(kvm_h.KVM_IOEVENTFD_FLAG_DEASSIGN(), kvm_ioeventfd.flags(d));
            // MMIO: never the PIO flag.
            assertEquals(0, kvm_ioeventfd.flags(d) & kvm_h.KVM_IOEVENTFD_FLAG_PIO());
        }
    }

    @Test
    void badLengthsAndDatamatchWithoutLengthAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_ioeventfd.allocate(arena);
            assertThrows(IllegalArgumentException.class, () -> KvmVm.fillIoeventfd(s, 0, 3, OptionalLong.empty(), 1, false));
            assertThrows(IllegalArgumentException.class, () -> KvmVm.fillIoeventfd(s, 0, 16, OptionalLong.empty(), 1, false));
            assertThrows(IllegalArgumentException.class, () -> KvmVm.fillIoeventfd(s, 0, 0, OptionalLong.of(1), 1, false));
        }
    }
}
