package dev.panamax.core.memory;

import dev.panamax.core.sys.AnonymousMemory;
import dev.panamax.core.sys.HostMemory;
import dev.panamax.core.sys.MemFd;

/**
 * What host memory backs guest RAM, as QEMU's memory backends: the {@link RamRegion}s are the same with each, only
 * their {@code fd} differs (-1 for {@link #ANONYMOUS}).
 */
public enum RamBacking {
    /**
     * Private anonymous memory advised {@code MADV_HUGEPAGE} ({@link AnonymousMemory}; QEMU's
     * {@code memory-backend-ram}, its default): transparent 2 MiB pages under the kernel's default THP setting. No
     * fd, so no vfio-user server can map it.
     */
    ANONYMOUS,
    /**
     * A sealed memfd ({@link MemFd}; QEMU's {@code memory-backend-memfd}): a vfio-user server maps guest RAM through
     * its fd. 4 KiB pages unless {@code /sys/kernel/mm/transparent_hugepage/shmem_enabled} allows huge ones.
     */
    MEMFD,
    /**
     * A sealed memfd of 2 MiB huge pages from the host's pool ({@link MemFd#hugetlb}; QEMU's
     * {@code memory-backend-memfd,hugetlb=on}): reserved at start, with an fd for vfio-user.
     */
    HUGETLBFS;

    /**
     * Allocates and maps {@code bytes} of this kind of memory.
     *
     * @throws IllegalArgumentException for {@link #HUGETLBFS} when {@code bytes} is not a multiple of 2 MiB
     * @throws dev.panamax.core.sys.LinuxException when the host cannot give it (ENOMEM; for {@link #HUGETLBFS} the
     *                                             message names the huge pages needed and free)
     */
    public HostMemory allocate(String name, long bytes) {
        return switch (this) {
            case ANONYMOUS -> new AnonymousMemory(name, bytes);
            case MEMFD -> new MemFd(name, bytes);
            case HUGETLBFS -> MemFd.hugetlb(name, bytes);
        };
    }
}
