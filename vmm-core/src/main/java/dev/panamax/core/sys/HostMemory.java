package dev.panamax.core.sys;

import java.lang.foreign.MemorySegment;

/**
 * Host memory mapped read-write into this process, as guest RAM lives in: {@link AnonymousMemory} (no fd) or a
 * {@link MemFd} (shared, an fd another process can map; with huge pages for {@code hugetlbfs}).
 */
public sealed interface HostMemory extends AutoCloseable permits AnonymousMemory, MemFd {
    /** @return the whole mapping; its {@code address()} is host-virtual, its size {@link #size()} bytes */
    MemorySegment mapping();

    /** @return the file the pages live in (owned by this object), or -1 for anonymous memory */
    int fd();

    /** @return the size in bytes */
    long size();

    /** Unmaps (and closes the fd). Segments sliced from {@link #mapping()} must not be used afterwards. */
    @Override
    void close();
}
