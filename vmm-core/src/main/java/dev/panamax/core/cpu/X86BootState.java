package dev.panamax.core.cpu;

/**
 * The register state in which a boot protocol hands the CPU to a kernel's entry point: what a
 * loader (e.g. the Linux 64-bit boot protocol, {@code Documentation/arch/x86/boot.rst}) computes
 * and a hypervisor backend writes into the boot vCPU before its first run.
 *
 * <p>All addresses are guest-physical (paging, if on, identity-maps them).
 *
 * @param rip       the entry point
 * @param rsp       the stack pointer
 * @param rsi       RSI; the Linux boot protocol puts the zero page ({@code struct boot_params}) here
 * @param rflags    RFLAGS (bit 1 is always set)
 * @param cr0       CR0 (PE, PG, ...)
 * @param cr3       CR3: guest-physical address of the top-level page table (PML4)
 * @param cr4       CR4 (PAE, ...)
 * @param efer      the IA32_EFER MSR (LME, LMA)
 * @param code      CS
 * @param data      DS, ES, FS, GS and SS (the boot protocols load one flat data segment in all)
 * @param gdtBase   guest-physical address of the GDT
 * @param gdtLimit  the GDT's limit in bytes (size - 1)
 * @param idtBase   guest-physical address of the IDT
 * @param idtLimit  the IDT's limit in bytes (size - 1)
 */
public record X86BootState(long rip, long rsp, long rsi, long rflags,
                           long cr0, long cr3, long cr4, long efer,
                           Segment code, Segment data,
                           long gdtBase, int gdtLimit, long idtBase, int idtLimit) {
}
