package dev.panamax.kvm;

/**
 * Why {@link KvmVcpu#run} returned: its run loop ({@link VcpuRunLoop}) stopped, and the vCPU will not run
 * again without the VMM doing something (stopping or resetting the machine). Not a KVM exit: {@code KVM_RUN}
 * returns to user space on every {@code KVM_EXIT_*} (port I/O, MMIO, ...), and the loop handles most of them
 * and runs the vCPU again; only the reasons below end it. Errors (a failed VM entry, a KVM internal error) are
 * thrown as {@link KvmException} instead.
 *
 * @param reason what ended the run
 * @param detail a one-line explanation for logs
 */
public record VcpuStop(Reason reason, String detail) {
    public enum Reason {
        /** {@link KvmVcpu#requestStop()} was called. */
        STOPPED,
        /** The vCPU executed HLT and KVM handed it to user space ({@code KVM_EXIT_HLT}); nothing can wake it. */
        HALTED,
        /** {@code KVM_EXIT_SHUTDOWN}: the guest triple-faulted (or its CPU shut down otherwise). */
        SHUTDOWN,
        /** {@code KVM_EXIT_SYSTEM_EVENT} of type {@code KVM_SYSTEM_EVENT_SHUTDOWN}: the guest powered off. */
        POWER_OFF,
        /** {@code KVM_EXIT_SYSTEM_EVENT} of type {@code KVM_SYSTEM_EVENT_RESET}: the guest asked for a reset. */
        RESET,
        /** {@code KVM_EXIT_SYSTEM_EVENT} of type {@code KVM_SYSTEM_EVENT_CRASH}: the guest reported a crash. */
        CRASH,
        /** Another {@code KVM_EXIT_SYSTEM_EVENT} type; the detail names it. */
        SYSTEM_EVENT
    }
}
