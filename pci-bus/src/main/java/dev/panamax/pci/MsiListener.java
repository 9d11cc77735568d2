package dev.panamax.pci;

/**
 * Told what the guest programs into MSI or MSI-X vectors, and when a message is to be sent. These become KVM
 * GSI routes ({@code KVM_SET_GSI_ROUTING}, {@code kvm_irq_routing_msi}) and {@code KVM_SIGNAL_MSI} later.
 *
 * <p>Called with the function's lock held, on the vCPU thread doing the write (or the thread that fired).
 */
public interface MsiListener {
    /**
     * A vector's effective state changed: its address or data was programmed, or it became masked or unmasked.
     *
     * @param vector  vector number: 0..31 for MSI, the table entry 0..2047 for MSI-X
     * @param address the message address, guest-physical (0xFEEx_xxxx on x86)
     * @param data    the message data (for multi-message MSI, with the vector number in its low bits)
     * @param masked  true when the vector cannot deliver: MSI/MSI-X disabled, the function masked, the
     *                vector's mask bit set, or (MSI) the vector beyond the enabled count
     */
    void onVectorChanged(int vector, long address, int data, boolean masked);

    /**
     * A message is to be written now: a fired vector that was not masked, or a pending one that was unmasked.
     *
     * @param vector  vector number
     * @param address the message address
     * @param data    the message data
     */
    void onMessage(int vector, long address, int data);
}
