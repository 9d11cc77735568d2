package dev.panamax.core.sys;

import java.lang.foreign.MemorySegment;

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
 */
public final class MemFd implements AutoCloseable {
    private final String name;
    private final int fd;
    private final long size;
    private final MemorySegment mapping;
    private boolean closed;

    /** The seals every memfd gets once sized. */
    public static final int SEALS = Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL;

    /**
     * Creates the file, sizes it, seals its size and maps it read-write, shared.
     *
     * @param name a name for {@code /proc/PID/fd} and {@code /proc/PID/maps}
     * @param size bytes, a multiple of the page size
     * @throws LinuxException e.g. ENOMEM when the host cannot give that much
     */
    public MemFd(String name, long size) {
        this.name = name;
        this.size = size;
        this.fd = Libc.memfdCreate(name, Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING);
        MemorySegment m;
        try {
            Libc.ftruncate(fd, size);
            Libc.fcntl(fd, Libc.F_ADD_SEALS, SEALS, "F_ADD_SEALS memfd " + name);
            m = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE, fd, 0, name);
        } catch (LinuxException e) {
            Libc.close(fd);
            throw e;
        }
        this.mapping = m;
        Libc.madviseRaw(m, Libc.MADV_HUGEPAGE); // a hint: a kernel without THP refuses it, and nothing changes
    }

    /** @return the memfd (owned by this object) */
    public int fd() {
        return fd;
    }

    /** @return the size in bytes */
    public long size() {
        return size;
    }

    /** @return the whole file as mapped here; its {@code address()} is host-virtual */
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
