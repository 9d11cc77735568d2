package dev.panamax.vfio;

import dev.panamax.vfio.bindings.vfio_h;

/**
 * One {@code VFIO_DEVICE_SET_IRQS} request ({@code struct vfio_irq_set}): an action on vectors
 * {@code [start, start + count)} of IRQ index {@code index}, with no data, a bool per vector, or an eventfd per
 * vector (-1 de-assigns that vector).
 *
 * @param flags    one {@code VFIO_IRQ_SET_DATA_*} and one {@code VFIO_IRQ_SET_ACTION_*}
 * @param index    the IRQ index, e.g. {@code VFIO_PCI_MSI_IRQ_INDEX}
 * @param start    first vector
 * @param count    number of vectors
 * @param eventfds with DATA_EVENTFD: {@code count} file descriptors; otherwise empty
 * @param bools    with DATA_BOOL: {@code count} values; otherwise empty
 */
public record VfioIrqSet(int flags, int index, int start, int count, int[] eventfds, boolean[] bools) {
    /** The action a request takes. */
    public enum Action {
        /** Mask the vectors (user to kernel). */
        MASK,
        /** Unmask the vectors (user to kernel); with an eventfd, unmask whenever it is signalled. */
        UNMASK,
        /** Signal the eventfds when the device raises the vectors (kernel to user). */
        TRIGGER;

        int flag() {
            return switch (this) {
                case MASK -> vfio_h.VFIO_IRQ_SET_ACTION_MASK();
                case UNMASK -> vfio_h.VFIO_IRQ_SET_ACTION_UNMASK();
                case TRIGGER -> vfio_h.VFIO_IRQ_SET_ACTION_TRIGGER();
            };
        }
    }

    /** @throws IllegalArgumentException if the data does not match the flags or count */
    public VfioIrqSet {
        eventfds = eventfds.clone();
        bools = bools.clone();
        int data = flags & (vfio_h.VFIO_IRQ_SET_DATA_NONE() | vfio_h.VFIO_IRQ_SET_DATA_BOOL() | vfio_h.VFIO_IRQ_SET_DATA_EVENTFD());
        int expected = data == vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() ? eventfds.length
                : data == vfio_h.VFIO_IRQ_SET_DATA_BOOL() ? bools.length : -1;
        if (Integer.bitCount(data) != 1 || count < 0 || start < 0
                || (expected >= 0 && expected != count)
                || (data == vfio_h.VFIO_IRQ_SET_DATA_NONE() && (eventfds.length | bools.length) != 0)) {
            throw new IllegalArgumentException(String.format(
                    "VFIO_DEVICE_SET_IRQS flags 0x%x, index %d, vectors %d+%d: data does not match (%d eventfds, %d bools)",
                    flags, index, start, count, eventfds.length, bools.length));
        }
    }

    /** {@code action} with one eventfd per vector from {@code start} (-1 de-assigns a vector). */
    public static VfioIrqSet eventfds(Action action, int index, int start, int... fds) {
        return new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_EVENTFD() | action.flag(), index, start, fds.length, fds, new boolean[0]);
    }

    /** {@code action} now on {@code count} vectors from {@code start}, no data. */
    public static VfioIrqSet none(Action action, int index, int start, int count) {
        return new VfioIrqSet(vfio_h.VFIO_IRQ_SET_DATA_NONE() | action.flag(), index, start, count, new int[0], new boolean[0]);
    }

    /** Disables the whole index: TRIGGER with no data and count 0. */
    public static VfioIrqSet disable(int index) {
        return none(Action.TRIGGER, index, 0, 0);
    }

    /** @return the {@code struct vfio_irq_set} data size in bytes: 4 per eventfd, 1 per bool, or 0 */
    public int dataBytes() {
        return eventfds.length * 4 + bools.length;
    }
}
