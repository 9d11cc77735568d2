package dev.panamax.vmm;

import dev.panamax.core.memory.RamBacking;

import java.util.List;

/**
 * The guest RAM backend a user asks for ({@code --memory-backend}), as QEMU's memory backends:
 * {@link #AUTO} picks {@link #MEMFD} when a vfio-user device is attached (its server maps guest RAM through the
 * memfd) and {@link #ANONYMOUS} otherwise (QEMU's default: transparent 2 MiB pages under the kernel's default THP
 * setting). See {@link RamBacking} for each kind.
 */
public enum MemoryBackend {
    AUTO, ANONYMOUS, MEMFD, HUGETLBFS;

    /** @return the backing for a machine with {@code devices}: this one, or for {@link #AUTO} what they need */
    public RamBacking resolve(List<DeviceConfig> devices) {
        return switch (this) {
            case AUTO -> firstVfioUser(devices) != null ? RamBacking.MEMFD : RamBacking.ANONYMOUS;
            case ANONYMOUS -> RamBacking.ANONYMOUS;
            case MEMFD -> RamBacking.MEMFD;
            case HUGETLBFS -> RamBacking.HUGETLBFS;
        };
    }

    /** @return the name as the user writes it, e.g. "hugetlbfs" */
    public String optionValue() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }

    /** @return the first vfio-user device of {@code devices}, or null */
    static DeviceConfig.VfioUserPci firstVfioUser(List<DeviceConfig> devices) {
        for (DeviceConfig d : devices) {
            if (d instanceof DeviceConfig.VfioUserPci u) {
                return u;
            }
        }
        return null;
    }
}
