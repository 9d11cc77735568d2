package dev.panamax.core.irq;

/**
 * One interrupt input of the platform's interrupt controllers, addressed by GSI (global system
 * interrupt number: ISA IRQs 0-15 are GSIs 0-15 on the PIC and IOAPIC). A device model drives its
 * line; the backend turns that into e.g. {@code KVM_IRQ_LINE}.
 */
@FunctionalInterface
public interface IrqLine {
    /** Drives the line: {@code true} asserts it, {@code false} deasserts it. */
    void set(boolean level);
}
