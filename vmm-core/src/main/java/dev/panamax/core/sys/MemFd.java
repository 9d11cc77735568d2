package dev.panamax.core.sys;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * An anonymous memory file ({@code memfd_create(2)}) mapped shared into this process. Guest RAM
 * lives in one, so that another process (a vfio-user server) can map the same pages when it gets
 * the fd over {@code SCM_RIGHTS}.
 *
 * <p>The mapping is advised {@code MADV_HUGEPAGE}: where the host lets shared memory use transparent huge pages
 * ({@code /sys/kernel/mm/transparent_hugepage/shmem_enabled} set to {@code advise}, {@code within_size} or
 * {@code always}), guest RAM is backed by 2 MiB pages, and KVM maps it into the guest with 2 MiB pages too: one
 * fault where there were 512. With the kernel's default ({@code never}) the advice changes nothing.
 *
 * <p>The file is sealed at its size ({@code F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL}, {@code fcntl(2)} "File
 * Sealing", as QEMU's memfd backend, {@code util/memfd.c}): a process it is shared with cannot {@code ftruncate} it
 * under this one's mapping (a shrink would make the next access here SIGBUS), nor remove or add seals.
 *
 * <p>{@link #hugetlb} makes one of 2 MiB huge pages ({@code MFD_HUGETLB | MFD_HUGE_2MB}, as QEMU's
 * {@code memory-backend-memfd,hugetlb=on,hugetlbsize=2M}) from the host's pool ({@code vm.nr_hugepages}). It is
 * mapped without {@code MAP_NORESERVE}, so the kernel reserves all its pages at {@code mmap} (the kernel's
 * {@code Documentation/admin-guide/mm/hugetlbpage.rst}): a pool too small fails there, with ENOMEM, not as a SIGBUS
 * at the guest's first touch of a page the pool cannot give.
 */
public final class MemFd implements HostMemory {
    private final String name;
    private final int fd;
    private final long size;
    private final MemorySegment mapping;
    private boolean closed;

    /** The seals every memfd gets once sized. */
    public static final int SEALS = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;
    /** The huge page size of {@link #hugetlb}: 2 MiB ({@code MFD_HUGE_2MB}). */
    public static final long HUGE_PAGE_BYTES = 2L << 20;

    /**
     * Creates the file, sizes it, seals its size and maps it read-write, shared.
     *
     * @param name a name for {@code /proc/PID/fd} and {@code /proc/PID/maps}
     * @param size bytes, a multiple of the page size
     * @throws LinuxException e.g. ENOMEM when the host cannot give that much
     */
    public MemFd(String name, long size) {
        this(name, size, false);
    }

    /**
     * A memfd of 2 MiB huge pages ({@code MFD_HUGETLB | MFD_HUGE_2MB}), sized, sealed and mapped as
     * {@link #MemFd(String, long)}, its pages reserved from the host's huge page pool at once.
     *
     * @param size bytes, a positive multiple of {@link #HUGE_PAGE_BYTES}
     * @throws IllegalArgumentException when {@code size} is not such a multiple
     * @throws LinuxException ENOMEM, its message naming the pages needed and those free ({@code /proc/meminfo}),
     *                        when the pool has too few; EINVAL when the kernel has no 2 MiB hugetlbfs
     */
    public static MemFd hugetlb(String name, long size) {
        if (size <= 0 || size % HUGE_PAGE_BYTES != 0) {
            throw new IllegalArgumentException("hugetlbfs memory must be a positive multiple of 2 MiB, not " + size + " bytes");
        }
        return new MemFd(name, size, true);
    }

    private MemFd(String name, long size, boolean hugetlb) {
        this.name = name;
        this.size = size;
        int flags = Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING | (hugetlb ? Libc.MFD_HUGETLB | Libc.MFD_HUGE_2MB : 0);
        this.fd = Libc.memfdCreate(name, flags);
        MemorySegment m;
        try {
            Libc.ftruncate(fd, size);
            Libc.fcntl(fd, Libc.F_ADD_SEALS, SEALS, "F_ADD_SEALS memfd " + name);
            // hugetlb: no MAP_NORESERVE, so that mmap reserves every huge page now or fails.
            m = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | (hugetlb ? 0 : Libc.MAP_NORESERVE),
                    fd, 0, name);
        } catch (LinuxException e) {
            Libc.close(fd);
            if (hugetlb && e.errno() == Errno.ENOMEM) {
                throw new LinuxException("mmap " + name + ": " + size / HUGE_PAGE_BYTES + " huge pages of 2 MiB needed, "
                        + hugePagesFree() + " (set more with sysctl vm.nr_hugepages)", Errno.ENOMEM);
            }
            throw e;
        }
        this.mapping = m;
        if (!hugetlb) {
            Libc.madviseRaw(m, Libc.MADV_HUGEPAGE); // a hint: a kernel without THP refuses it, and nothing changes
        }
    }

    /** @return "the host has N free (/proc/meminfo HugePages_Free N, HugePages_Rsvd M)", or what could be read */
    static String hugePagesFree() {
        long free = -1, rsvd = -1;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                String[] f = line.split("\\s+");
                if (f[0].equals("HugePages_Free:")) {
                    free = Long.parseLong(f[1]);
                } else if (f[0].equals("HugePages_Rsvd:")) {
                    rsvd = Long.parseLong(f[1]);
                }
            }
        } catch (IOException | RuntimeException e) {
            return "the host's free huge pages unknown (" + e.getMessage() + ")";
        }
        if (free < 0) {
            return "the host's free huge pages unknown (no HugePages_Free in /proc/meminfo)";
        }
        long unreserved = Math.max(0, free - Math.max(0, rsvd));
        return "the host has " + unreserved + " free (/proc/meminfo HugePages_Free " + free + ", HugePages_Rsvd " + rsvd + ")";
    }

    /** @return the memfd (owned by this object) */
    @Override
    public int fd() {
        return fd;
    }

    /** @return the size in bytes */
    @Override
    public long size() {
        return size;
    }

    /** @return the whole file as mapped here; its {@code address()} is host-virtual */
    @Override
    public MemorySegment mapping() {
        return mapping;
    }

    /** @return the name given at creation */
    public String name() {
        return name;
    }

    /** Unmaps and closes. Segments sliced from {@link #mapping()} must not be used afterwards. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.munmap(mapping);
            Libc.close(fd);
        }
    }
}
