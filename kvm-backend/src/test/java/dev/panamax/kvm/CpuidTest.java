package dev.panamax.kvm;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Cpuid#forVcpu} on a synthetic table shaped like KVM_GET_SUPPORTED_CPUID on an Intel host. */
class CpuidTest {
    static final int SIG = Cpuid.FLAG_SIGNIFICANT_INDEX;

    // Host values deliberately "wrong" for the guest: host APIC id 7, 16 logical processors, HTT off.
    static final List<CpuidEntry> HOST = List.of(
            new CpuidEntry(0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
            new CpuidEntry(0x1, 0, 0, 0x000906ea, 0x07100800, 0x7ffafbff, 0x0fabfbff),
            // leaf 4: L1d (type 1, level 1), L3 (type 3, level 3), end (type 0); host says 8 cores, 16 sharing L3
            new CpuidEntry(0x4, 0, SIG, (7 << 26) | (1 << 14) | (1 << 5) | 1, 0x01c0003f, 0x3f, 0),
            new CpuidEntry(0x4, 1, SIG, (7 << 26) | (15 << 14) | (3 << 5) | 3, 0x03c0003f, 0x2fff, 6),
            new CpuidEntry(0x4, 2, SIG, 0, 0, 0, 0),
            new CpuidEntry(0xb, 0, SIG, 1, 2, 0x100, 7),
            new CpuidEntry(0xb, 1, SIG, 4, 16, 0x201, 7),
            new CpuidEntry(0x1f, 0, SIG, 1, 2, 0x100, 7),
            new CpuidEntry(0x1f, 1, SIG, 4, 16, 0x201, 7),
            new CpuidEntry(0x80000000, 0, 0, 0x80000008, 0, 0, 0),
            new CpuidEntry(0x80000008, 0, 0, 0x3027, 0, 0x0000f00f, 0));

    static CpuidEntry find(List<CpuidEntry> t, int leaf, int index) {
        return t.stream().filter(e -> e.function() == leaf && e.index() == index).findFirst()
                .orElseThrow(() -> new AssertionError("no leaf 0x" + Integer.toHexString(leaf) + "." + index));
    }

    @Test
    void leafOneCarriesApicIdCountHttAndHypervisor() {
        List<CpuidEntry> t = Cpuid.forVcpu(HOST, 2, 4);
        CpuidEntry l1 = find(t, 1, 0);
        assertEquals(0x02040800, l1.ebx(), "APIC id 2, 4 logical processors, CLFLUSH 8 kept");
        assertEquals(0x0fabfbff | (1 << 28), l1.edx(), "HTT set");
        assertEquals(0x7ffafbff | (1 << 31), l1.ecx(), "hypervisor bit set");
        assertEquals(0x000906ea, l1.eax());
        CpuidEntry single = find(Cpuid.forVcpu(HOST, 0, 1), 1, 0);
        assertEquals(0x00010800, single.ebx());
        assertEquals(0x0fabfbff & ~(1 << 28), single.edx(), "HTT clear for one vCPU");
    }

    @Test
    void topologyLeavesDescribeOneThreadPerCore() {
        for (int leaf : new int[] {0xb, 0x1f}) {
            List<CpuidEntry> t = Cpuid.forVcpu(HOST, 5, 6);
            List<CpuidEntry> sub = t.stream().filter(e -> e.function() == leaf).toList();
            assertEquals(List.of(
                    new CpuidEntry(leaf, 0, SIG, 0, 1, 0x100, 5),
                    new CpuidEntry(leaf, 1, SIG, 3, 6, 0x201, 5),
                    new CpuidEntry(leaf, 2, SIG, 0, 0, 0x002, 5)), sub);
        }
        // No 0xB in the host table: none invented.
        List<CpuidEntry> noTopology = HOST.stream().filter(e -> e.function() != 0xb && e.function() != 0x1f).toList();
        assertTrue(Cpuid.forVcpu(noTopology, 0, 2).stream().noneMatch(e -> e.function() == 0xb || e.function() == 0x1f));
    }

    @Test
    void cacheLeafCountsCoresAndSharing() {
        List<CpuidEntry> t = Cpuid.forVcpu(HOST, 1, 4);
        CpuidEntry l1d = find(t, 4, 0);
        assertEquals(3, l1d.eax() >>> 26, "cores per package - 1");
        assertEquals(0, (l1d.eax() >>> 14) & 0xfff, "L1 shared by one thread");
        assertEquals((1 << 5) | 1, l1d.eax() & 0x3fff, "type and level kept");
        CpuidEntry l3 = find(t, 4, 1);
        assertEquals(3, l3.eax() >>> 26);
        assertEquals(3, (l3.eax() >>> 14) & 0xfff, "L3 shared by all 4");
        assertEquals(0x03c0003f, l3.ebx());
        assertEquals(new CpuidEntry(0x4, 2, SIG, 0, 0, 0, 0), find(t, 4, 2), "terminator untouched");
    }

    @Test
    void amdCoreCountAndOtherLeavesPassThrough() {
        List<CpuidEntry> t = Cpuid.forVcpu(HOST, 0, 3);
        assertEquals((2 << 12) | 2, find(t, 0x80000008, 0).ecx(), "ApicIdSize 2 bits, NC = 2");
        assertEquals(HOST.get(0), find(t, 0, 0));
        assertEquals(HOST.get(9), find(t, 0x80000000, 0));
        // No duplicates: each (leaf, index) once.
        assertEquals(t.size(), t.stream().map(e -> e.function() + "." + e.index()).collect(Collectors.toSet()).size());
    }

    @Test
    void bitsForCounts() {
        assertEquals(0, Cpuid.bitsFor(1));
        assertEquals(1, Cpuid.bitsFor(2));
        assertEquals(2, Cpuid.bitsFor(3));
        assertEquals(2, Cpuid.bitsFor(4));
        assertEquals(3, Cpuid.bitsFor(5));
        assertEquals(8, Cpuid.bitsFor(254));
    }

    @Test
    void badCountsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Cpuid.forVcpu(HOST, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> Cpuid.forVcpu(HOST, 0, 255));
        var e = assertThrows(IllegalArgumentException.class, () -> Cpuid.forVcpu(HOST, 4, 4));
        assertEquals("APIC id 4 is out of range 0..3", e.getMessage());
    }

    @Test
    void kvmCpuid2EncodingRoundTrips() {
        try (Arena arena = Arena.ofConfined()) {
            List<CpuidEntry> t = Cpuid.forVcpu(HOST, 1, 2);
            assertEquals(t, Kvm.decodeCpuid(Kvm.encodeCpuid(arena, t)));
        }
    }
}
