package dev.panamax.core.sys;

import java.lang.foreign.MemorySegment;

/**
 * Private anonymous memory ({@code mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)}), as QEMU's default RAM
 * backend ({@code memory-backend-ram}; {@code util/oslib-posix.c} {@code qemu_anon_ram_alloc}). It has no fd: the
 * kernel's VFIO ({@code VFIO_IOMMU_MAP_DMA}) and KVM's memory slots take the host-virtual address, but no other
 * process can map it (a vfio-user server needs a {@link MemFd}).
 *
 * <p>Advised as QEMU advises every RAM block ({@code system/physmem.c} {@code ram_block_add}):
 * {@code MADV_HUGEPAGE}, so that under the kernel's default THP setting
 * ({@code /sys/kernel/mm/transparent_hugepage/enabled} = {@code madvise} or {@code always}) it is backed by
 * 2 MiB pages and KVM maps it into the guest with 2 MiB pages. Not {@code MADV_DONTFORK} (QEMU's other advice):
 * with it on guest RAM, nested L1 VMs under QEMU TCG wedged (soft lockups on both CPUs) in 2 of 2 sessions that
 * created KVM VMs, against 0 of 3 without; Panamax never forks while it holds guest RAM. The pages are allocated
 * (zeroed) on first touch; {@code MAP_NORESERVE}: no swap is reserved up front.
 */
public final class AnonymousMemory implements HostMemory {
    private final long size;
    private final MemorySegment mapping;
    private boolean closed;

    /**
     * Maps {@code size} bytes.
     *
     * @param name for the error message
     * @param size bytes, a multiple of the page size
     * @throws LinuxException e.g. ENOMEM when the address space or the overcommit limit cannot give that much
     */
    public AnonymousMemory(String name, long size) {
        this.size = size;
        this.mapping = Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0, name);
        Libc.madviseRaw(mapping, Libc.MADV_HUGEPAGE); // a hint: a kernel without THP refuses it, and nothing changes
    }

    @Override
    public MemorySegment mapping() {
        return mapping;
    }

    /** @return -1: anonymous memory has no fd */
    @Override
    public int fd() {
        return -1;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.munmap(mapping);
        }
    }
}
