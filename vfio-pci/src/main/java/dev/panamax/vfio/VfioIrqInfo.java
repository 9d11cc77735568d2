package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;

/**
 * What {@code VFIO_DEVICE_GET_IRQ_INFO} reports for one IRQ index ({@code struct vfio_irq_info}).
 *
 * @param index the IRQ index, e.g. {@code VFIO_PCI_MSIX_IRQ_INDEX}
 * @param flags {@code VFIO_IRQ_INFO_*}
 * @param count number of vectors at this index; 0 if the device has none
 */
public record VfioIrqInfo(int index, int flags, int count) {
    /** @return true if the IRQs can signal an eventfd */
    public boolean eventfd() {
        return (flags & vfio_h.VFIO_IRQ_INFO_EVENTFD()) != 0;
    }

    /** @return true if the IRQs can be masked */
    public boolean maskable() {
        return (flags & vfio_h.VFIO_IRQ_INFO_MASKABLE()) != 0;
    }

    /** @return true if the IRQ masks itself when it fires and needs an unmask (level-triggered INTx) */
    public boolean automasked() {
        return (flags & vfio_h.VFIO_IRQ_INFO_AUTOMASKED()) != 0;
    }

    /** @return true if the vector count cannot change once enabled (tear down to add vectors) */
    public boolean noResize() {
        return (flags & vfio_h.VFIO_IRQ_INFO_NORESIZE()) != 0;
    }
}
