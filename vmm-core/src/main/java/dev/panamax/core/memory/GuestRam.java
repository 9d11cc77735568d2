package dev.panamax.core.memory;

import dev.panamax.core.sys.HostMemory;
import dev.panamax.core.sys.MemFd;

import java.util.ArrayList;
import java.util.List;

/**
 * All of a guest's RAM: one allocation of host memory ({@link RamBacking}: anonymous, memfd or hugetlbfs), mapped
 * once, split into regions around the 32-bit PCI hole ({@link X86Layout}) and added to an {@link AddressSpace}. The
 * regions are the same whatever the backing; their {@code fd} is the memfd's, or -1 for anonymous memory.
 */
public final class GuestRam implements AutoCloseable {
    private final RamBacking backing;
    private final HostMemory memory;
    private final List<RamRegion> regions = new ArrayList<>();
    private final AddressSpace space;

    /** Guest RAM in a memfd ({@link RamBacking#MEMFD}); see {@link #GuestRam(AddressSpace, long, RamBacking)}. */
    public GuestRam(AddressSpace space, long ramBytes) {
        this(space, ramBytes, RamBacking.MEMFD);
    }

    /**
     * Allocates the memory and adds "ram-low" (and "ram-high" when needed) to {@code space}.
     *
     * @param ramBytes total guest RAM in bytes, a positive multiple of 2 MiB
     * @throws IllegalArgumentException on a bad size
     * @throws dev.panamax.core.sys.LinuxException if the host cannot give the memory (see {@link RamBacking#allocate})
     */
    public GuestRam(AddressSpace space, long ramBytes, RamBacking backing) {
        if (ramBytes <= 0 || ramBytes % (2 << 20) != 0) {
            throw new IllegalArgumentException("guest memory must be a positive multiple of 2 MiB, not " + ramBytes + " bytes");
        }
        this.space = space;
        this.backing = backing;
        this.memory = backing.allocate("panamax-guest-ram", ramBytes);
        long low = X86Layout.lowRamBytes(ramBytes);
        // The fd offset is kept for anonymous memory too (unused there): one region shape for every backing.
        regions.add(new RamRegion("ram-low", 0, low, memory.mapping().asSlice(0, low), memory.fd(), 0));
        long high = X86Layout.highRamBytes(ramBytes);
        if (high > 0) {
            regions.add(new RamRegion("ram-high", X86Layout.HIGH_RAM_START, high,
                    memory.mapping().asSlice(low, high), memory.fd(), low));
        }
        try {
            for (RamRegion r : regions) {
                space.add(r);
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** @return the regions, low first */
    public List<RamRegion> regions() {
        return List.copyOf(regions);
    }

    /** @return the region starting at guest-physical 0 */
    public RamRegion low() {
        return regions.getFirst();
    }

    /** @return bytes of RAM above 4 GiB (0 if none) */
    public long highBytes() {
        return regions.size() > 1 ? regions.get(1).size() : 0;
    }

    /** @return what backs the regions */
    public RamBacking backing() {
        return backing;
    }

    /** @return the host memory behind all regions (its {@code fd()} is -1 for anonymous memory) */
    public HostMemory memory() {
        return memory;
    }

    /**
     * @return the memfd behind all regions
     * @throws IllegalStateException when the RAM is anonymous ({@link RamBacking#ANONYMOUS}: no fd)
     */
    public MemFd memfd() {
        if (memory instanceof MemFd m) {
            return m;
        }
        throw new IllegalStateException("guest RAM is " + backing + ", not in a memfd");
    }

    /** Removes the regions from the address space (listeners unmap them), then frees the memory. */
    @Override
    public void close() {
        for (RamRegion r : regions.reversed()) {
            if (space.regions().contains(r)) {
                space.remove(r);
            }
        }
        memory.close();
    }
}
