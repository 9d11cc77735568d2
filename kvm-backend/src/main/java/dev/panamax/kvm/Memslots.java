package dev.panamax.kvm;

import java.util.BitSet;

/** The memory-slot numbers of one VM: 0..limit-1, each used by at most one RAM region. */
final class Memslots {
    private final int limit;
    private final BitSet used = new BitSet();

    /** @param limit how many slots KVM allows ({@code KVM_CAP_NR_MEMSLOTS}) */
    Memslots(int limit) {
        this.limit = limit;
    }

    /**
     * @param regionName for the error message
     * @return the lowest free slot
     * @throws IllegalStateException if all {@code limit} slots are in use
     */
    synchronized int allocate(String regionName) {
        int slot = used.nextClearBit(0);
        if (slot >= limit) {
            throw new IllegalStateException("no free KVM memory slot for " + regionName + ": all " + limit + " in use");
        }
        used.set(slot);
        return slot;
    }

    /** Frees {@code slot}; freeing a free slot is a bug and throws. */
    synchronized void free(int slot) {
        if (!used.get(slot)) {
            throw new IllegalStateException("KVM memory slot " + slot + " is not in use");
        }
        used.clear(slot);
    }
}
