package dev.panamax.core.memory;

import java.util.OptionalLong;

/**
 * The VM's ioeventfds: a guest write to a guest-physical MMIO address signals an eventfd instead of exiting to
 * this process, so that a device living elsewhere (a vfio-user server) sees a doorbell without a socket round trip.
 * On KVM: {@code KVM_IOEVENTFD} with {@code struct kvm_ioeventfd} ({@code linux/kvm.h};
 * Documentation/virt/kvm/api.rst 4.59). Implemented by kvm-backend's {@code KvmVm}; devices reach it through this
 * interface, as they reach irqfds through {@link dev.panamax.core.irq.IrqRoutes}.
 *
 * <p>An ioeventfd matches a write to exactly {@code address} of {@code length} bytes (1, 2, 4 or 8), and, with a
 * datamatch, only of that value; {@code length} 0 matches a write of any length and value (KVM's fast MMIO path,
 * no instruction decode), and takes no datamatch. Methods are thread-safe. Errors throw {@code LinuxException}
 * (or the backend's exception) naming the call: EEXIST for a second identical assignment, EINVAL for a bad length.
 */
public interface IoEventFds {
    /**
     * Makes each matching guest write signal {@code eventFd}. The eventfd stays the caller's to close (after
     * {@link #deassign}).
     *
     * @param address   guest-physical address of the doorbell
     * @param length    0, 1, 2, 4 or 8 bytes
     * @param datamatch the value the write must carry; empty: any value
     * @param eventFd   the eventfd to signal
     * @throws IllegalArgumentException for a length not 0, 1, 2, 4 or 8, or a datamatch with length 0
     */
    void assign(long address, int length, OptionalLong datamatch, int eventFd);

    /** Undoes {@link #assign} with the same arguments. */
    void deassign(long address, int length, OptionalLong datamatch, int eventFd);

    /**
     * Checks the arguments {@link #assign} takes.
     *
     * @throws IllegalArgumentException for a length not 0, 1, 2, 4 or 8, or a datamatch with length 0
     */
    static void check(int length, OptionalLong datamatch) {
        if (length != 0 && length != 1 && length != 2 && length != 4 && length != 8) {
            throw new IllegalArgumentException("ioeventfd length " + length + " is not 0, 1, 2, 4 or 8");
        }
        if (length == 0 && datamatch.isPresent()) {
            throw new IllegalArgumentException("an ioeventfd of length 0 matches any value and cannot have a datamatch");
        }
    }
}
