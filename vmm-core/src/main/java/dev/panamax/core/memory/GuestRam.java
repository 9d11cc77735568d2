package dev.panamax.core.memory;

import dev.panamax.core.sys.MemFd;

import java.util.ArrayList;
import java.util.List;

/**
 * All of a guest's RAM: one memfd, mapped once, split into regions around the 32-bit PCI hole
 * ({@link X86Layout}) and added to an {@link AddressSpace}.
 */
public final class GuestRam implements AutoCloseable {
    private final MemFd memfd;
    private final List<RamRegion> regions = new ArrayList<>();
    private final AddressSpace space;

    /**
     * Creates the memfd and adds "ram-low" (and "ram-high" when needed) to {@code space}.
     *
     * @param ramBytes total guest RAM in bytes, a positive multiple of 2 MiB
     * @throws IllegalArgumentException on a bad size
     * @throws dev.panamax.core.sys.LinuxException if the host cannot give the memory
     */
    public GuestRam(AddressSpace space, long ramBytes) {
        if (ramBytes <= 0 || ramBytes % (2 << 20) != 0) {
            throw new IllegalArgumentException("guest memory must be a positive multiple of 2 MiB, not " + ramBytes + " bytes");
        }
        this.space = space;
        this.memfd = new MemFd("panamax-guest-ram", ramBytes);
        long low = X86Layout.lowRamBytes(ramBytes);
        regions.add(new RamRegion("ram-low", 0, low, memfd.mapping().asSlice(0, low), memfd.fd(), 0));
        long high = X86Layout.highRamBytes(ramBytes);
        if (high > 0) {
            regions.add(new RamRegion("ram-high", X86Layout.HIGH_RAM_START, high,
                    memfd.mapping().asSlice(low, high), memfd.fd(), low));
        }
        for (RamRegion r : regions) {
            space.add(r);
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

    /** @return the memfd behind all regions */
    public MemFd memfd() {
        return memfd;
    }

    /** Removes the regions from the address space (listeners unmap them), then frees the memory. */
    @Override
    public void close() {
        for (RamRegion r : regions.reversed()) {
            if (space.regions().contains(r)) {
                space.remove(r);
            }
        }
        memfd.close();
    }
}
