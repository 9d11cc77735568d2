package dev.panamax.kvm;

import java.util.ArrayList;
import java.util.List;

/**
 * Turns the CPUID table KVM supports ({@code KVM_GET_SUPPORTED_CPUID}) into the one a given vCPU shows:
 * its APIC id and the topology of a VM with {@code vcpuCount} vCPUs, one thread per core, all cores in one
 * package (what Firecracker presents). Pure: no KVM needed.
 *
 * <p>Leaves patched (Intel SDM Vol. 2A, CPUID; AMD APM Vol. 3, Appendix E):
 * <ul>
 *   <li>1: EBX[31:24] initial APIC id, EBX[23:16] logical processors per package, EDX[28] HTT when more
 *       than one, ECX[31] "running on a hypervisor".</li>
 *   <li>4 (Intel caches): EAX[31:26] cores per package - 1, EAX[25:14] threads sharing the cache - 1
 *       (all vCPUs share the L3, nothing shares L1/L2).</li>
 *   <li>0xB and 0x1F (x2APIC topology), where the host table has them: sub-leaf 0 the SMT level (one thread,
 *       shift 0), sub-leaf 1 the core level (shift = bits for vcpuCount ids, vcpuCount processors),
 *       sub-leaf 2 the invalid level that ends the list; EDX the x2APIC id in each.</li>
 *   <li>0x80000008 ECX (AMD: cores per package - 1 and APIC id size) and 0x8000001E (AMD: extended APIC
 *       id, core id, one thread per core), where present.</li>
 * </ul>
 * Every other entry passes through unchanged.
 */
public final class Cpuid {
    /** Most vCPUs: the xAPIC id in CPUID.1:EBX[31:24] and the count in EBX[23:16] are 8 bits. */
    public static final int MAX_VCPUS = 254;

    static final int FEATURES = 0x1;
    static final int CACHE_PARAMETERS = 0x4;
    static final int EXTENDED_TOPOLOGY = 0xb;
    static final int V2_EXTENDED_TOPOLOGY = 0x1f;
    static final int AMD_ADDRESS_SIZES = 0x80000008;
    static final int AMD_PROCESSOR_TOPOLOGY = 0x8000001e;

    static final int ECX_HYPERVISOR = 1 << 31;
    static final int EDX_HTT = 1 << 28;
    /** Level types of leaf 0xB/0x1F ECX[15:8]. */
    static final int LEVEL_INVALID = 0;
    static final int LEVEL_SMT = 1;
    static final int LEVEL_CORE = 2;
    /** {@code KVM_CPUID_FLAG_SIGNIFCANT_INDEX} (sic, as spelled in {@code <asm/kvm.h>}). */
    static final int FLAG_SIGNIFICANT_INDEX = 1;

    private Cpuid() {
    }

    /**
     * @param supported the host's table from {@code KVM_GET_SUPPORTED_CPUID}
     * @param apicId    this vCPU's APIC id (Panamax uses the vCPU index), 0..vcpuCount-1
     * @param vcpuCount number of vCPUs in the VM, 1..{@link #MAX_VCPUS}
     * @return the table to give {@code KVM_SET_CPUID2} for this vCPU
     * @throws IllegalArgumentException if the counts are out of range
     */
    public static List<CpuidEntry> forVcpu(List<CpuidEntry> supported, int apicId, int vcpuCount) {
        if (vcpuCount < 1 || vcpuCount > MAX_VCPUS) {
            throw new IllegalArgumentException("vCPU count " + vcpuCount + " is out of range 1.." + MAX_VCPUS);
        }
        if (apicId < 0 || apicId >= vcpuCount) {
            throw new IllegalArgumentException("APIC id " + apicId + " is out of range 0.." + (vcpuCount - 1));
        }
        int coreBits = bitsFor(vcpuCount);
        List<CpuidEntry> out = new ArrayList<>();
        boolean hasLeafB = false;
        boolean hasLeaf1F = false;
        for (CpuidEntry e : supported) {
            switch (e.function()) {
                case FEATURES -> {
                    int ebx = (e.ebx() & 0x0000ffff) | (apicId << 24) | (vcpuCount << 16);
                    int edx = vcpuCount > 1 ? e.edx() | EDX_HTT : e.edx() & ~EDX_HTT;
                    out.add(e.withEbx(ebx).withEcx(e.ecx() | ECX_HYPERVISOR).withEdx(edx));
                }
                case CACHE_PARAMETERS -> {
                    if ((e.eax() & 0x1f) == 0) { // cache type 0: no more caches
                        out.add(e);
                        break;
                    }
                    int level = (e.eax() >>> 5) & 0x7;
                    int sharing = level >= 3 ? vcpuCount - 1 : 0;
                    int cores = Math.min(vcpuCount, 64) - 1;
                    int eax = (e.eax() & 0x00003fff) | (Math.min(sharing, 0xfff) << 14) | (cores << 26);
                    out.add(e.withEax(eax));
                }
                case EXTENDED_TOPOLOGY -> hasLeafB = true;
                case V2_EXTENDED_TOPOLOGY -> hasLeaf1F = true;
                case AMD_ADDRESS_SIZES -> {
                    // ECX[15:12] ApicIdSize (bits of the APIC id that name the core), ECX[7:0] NC = cores - 1.
                    int ecx = (e.ecx() & ~0xf0ff) | (coreBits << 12) | (vcpuCount - 1);
                    out.add(e.withEcx(ecx));
                }
                case AMD_PROCESSOR_TOPOLOGY -> {
                    // EAX extended APIC id; EBX[15:8] threads per core - 1 = 0, EBX[7:0] core id; ECX node 0.
                    out.add(e.withEax(apicId).withEbx(apicId & 0xff).withEcx(0));
                }
                default -> out.add(e);
            }
        }
        if (hasLeafB) {
            out.addAll(topologyLeaf(EXTENDED_TOPOLOGY, apicId, vcpuCount, coreBits));
        }
        if (hasLeaf1F) {
            out.addAll(topologyLeaf(V2_EXTENDED_TOPOLOGY, apicId, vcpuCount, coreBits));
        }
        return out;
    }

    /** Leaf 0xB or 0x1F: SMT level, core level, then the invalid level that ends the enumeration. */
    private static List<CpuidEntry> topologyLeaf(int leaf, int apicId, int vcpuCount, int coreBits) {
        return List.of(
                new CpuidEntry(leaf, 0, FLAG_SIGNIFICANT_INDEX, 0, 1, (LEVEL_SMT << 8), apicId),
                new CpuidEntry(leaf, 1, FLAG_SIGNIFICANT_INDEX, coreBits, vcpuCount, (LEVEL_CORE << 8) | 1, apicId),
                new CpuidEntry(leaf, 2, FLAG_SIGNIFICANT_INDEX, 0, 0, (LEVEL_INVALID << 8) | 2, apicId));
    }

    /** @return the number of low APIC-id bits that distinguish {@code count} ids: ceil(log2(count)) */
    static int bitsFor(int count) {
        return count <= 1 ? 0 : 32 - Integer.numberOfLeadingZeros(count - 1);
    }
}
