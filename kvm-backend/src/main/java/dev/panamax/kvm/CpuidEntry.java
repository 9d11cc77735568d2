package dev.panamax.kvm;

/**
 * One CPUID leaf (and sub-leaf) as KVM exchanges it: {@code struct kvm_cpuid_entry2} in
 * {@code <asm/kvm.h>} without its padding.
 *
 * @param function the leaf (EAX input)
 * @param index    the sub-leaf (ECX input); only meaningful when {@code flags} has
 *                 {@code KVM_CPUID_FLAG_SIGNIFCANT_INDEX}
 * @param flags    {@code KVM_CPUID_FLAG_*}
 * @param eax      output EAX
 * @param ebx      output EBX
 * @param ecx      output ECX
 * @param edx      output EDX
 */
public record CpuidEntry(int function, int index, int flags, int eax, int ebx, int ecx, int edx) {
    public CpuidEntry withEax(int v) {
        return new CpuidEntry(function, index, flags, v, ebx, ecx, edx);
    }

    public CpuidEntry withEbx(int v) {
        return new CpuidEntry(function, index, flags, eax, v, ecx, edx);
    }

    public CpuidEntry withEcx(int v) {
        return new CpuidEntry(function, index, flags, eax, ebx, v, edx);
    }

    public CpuidEntry withEdx(int v) {
        return new CpuidEntry(function, index, flags, eax, ebx, ecx, v);
    }
}
