package dev.panamax.core.irq;

/**
 * The VM's interrupt routing table and its irqfds: how a device's eventfd becomes a guest interrupt without
 * passing through this process. A GSI (global system interrupt number) is either an interrupt controller input
 * (GSIs 0-23: the PIC's and IOAPIC's pins, routed by default) or an MSI route this interface adds: a message
 * address and data, as a PCI function's MSI or MSI-X vector holds them. An eventfd bound to a GSI (an irqfd)
 * injects that GSI each time it is signalled; with a resample eventfd, a level-triggered GSI is injected as
 * asserted and the resample eventfd is signalled when the guest acknowledges it (the EOI), which is how an
 * assigned device's INTx is re-armed.
 *
 * <p>On KVM: {@code KVM_SET_GSI_ROUTING} with {@code kvm_irq_routing_msi} entries, {@code KVM_IRQFD} with or
 * without {@code KVM_IRQFD_FLAG_RESAMPLE} ({@code linux/kvm.h}, Documentation/virt/kvm/api.rst 4.52 and 4.75).
 * Methods are thread-safe. Errors throw {@code LinuxException} (or the backend's exception) naming the call.
 */
public interface IrqRoutes {
    /**
     * Adds an MSI route.
     *
     * @param address the message address, guest-physical (0xFEEx_xxxx on x86)
     * @param data    the message data
     * @return the GSI it was given (above the interrupt controllers' pins)
     * @throws IllegalStateException if the routing table is full
     */
    int addMsiRoute(long address, int data);

    /** Changes the message of MSI route {@code gsi} (one the guest reprogrammed). */
    void updateMsiRoute(int gsi, long address, int data);

    /** Removes MSI route {@code gsi}; unbind its irqfds first. */
    void removeMsiRoute(int gsi);

    /** Makes each signal of {@code eventFd} inject {@code gsi} (edge: MSI routes). The eventfd stays the caller's. */
    void bindIrqfd(int eventFd, int gsi);

    /**
     * Makes each signal of {@code eventFd} assert level-triggered {@code gsi}; the guest's EOI deasserts it and
     * signals {@code resampleFd} (for INTx: the device's unmask eventfd).
     */
    void bindResampleIrqfd(int eventFd, int resampleFd, int gsi);

    /** Undoes {@link #bindIrqfd} or {@link #bindResampleIrqfd}. */
    void unbindIrqfd(int eventFd, int gsi);
}
