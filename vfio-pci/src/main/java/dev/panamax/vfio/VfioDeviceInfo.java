package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;

/**
 * What {@code VFIO_DEVICE_GET_INFO} reports ({@code struct vfio_device_info}, {@code <linux/vfio.h>}); vfio-user's
 * {@code VFIO_USER_DEVICE_GET_INFO} carries the same fields.
 *
 * @param flags      {@code VFIO_DEVICE_FLAGS_*}
 * @param numRegions number of region indexes (max index + 1); 9 for a vfio-pci device
 * @param numIrqs    number of IRQ indexes (max index + 1); 5 for a vfio-pci device
 */
public record VfioDeviceInfo(int flags, int numRegions, int numIrqs) {
    /** @return true if {@link VfioDeviceIo#reset} is supported ({@code VFIO_DEVICE_FLAGS_RESET}) */
    public boolean canReset() {
        return (flags & vfio_h.VFIO_DEVICE_FLAGS_RESET()) != 0;
    }

    /** @return true for a PCI device, whose regions and IRQs follow the {@code VFIO_PCI_*_INDEX} numbering */
    public boolean isPci() {
        return (flags & vfio_h.VFIO_DEVICE_FLAGS_PCI()) != 0;
    }
}
