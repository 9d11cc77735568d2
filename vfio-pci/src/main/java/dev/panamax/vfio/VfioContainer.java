package dev.panamax.vfio;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_iommu_type1_dma_map;
import dev.panamax.vfio.bindings.vfio_iommu_type1_dma_unmap;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * A VFIO container ({@code /dev/vfio/vfio}): one IOMMU context that groups join. The IOMMU model (Type1v2, else
 * Type1) is set when the first group joins ({@code VFIO_SET_IOMMU} needs a group); then
 * {@link #dmaMap}/{@link #dmaUnmap} edit the I/O page tables for every device of every group in it: the kernel's
 * {@link DmaBackend}, which maps memory by its host-virtual address (QEMU: {@code hw/vfio/container.c}).
 * See {@code Documentation/driver-api/vfio.rst} and {@code <linux/vfio.h>}.
 */
public final class VfioContainer implements DmaBackend, AutoCloseable {
    private final Path path;
    private final int fd;
    private final int iommuType;
    private boolean iommuSet;
    private boolean closed;

    private VfioContainer(Path path, int fd, int iommuType) {
        this.path = path;
        this.fd = fd;
        this.iommuType = iommuType;
    }

    /** Opens {@code /dev/vfio/vfio}. */
    public static VfioContainer open() {
        return open(Path.of("/dev/vfio/vfio"));
    }

    /**
     * Opens the container device, checks the API version and that Type1 (v2 preferred) is supported.
     *
     * @throws IllegalStateException with what to do if the file is missing, not permitted, or not a VFIO of this API
     */
    public static VfioContainer open(Path path) {
        int fd;
        try {
            fd = Libc.open(path.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        } catch (LinuxException e) {
            if (e.errno() == Errno.ENOENT) {
                throw new IllegalStateException(path + " is missing: load the vfio-pci module (modprobe vfio-pci)");
            }
            if (e.errno() == Errno.EACCES || e.errno() == Errno.EPERM) {
                throw new IllegalStateException("no permission to open " + path + ": run as root or give this user the file");
            }
            throw new IllegalStateException(e.getMessage());
        }
        try {
            int version = Libc.ioctl(fd, vfio_h.VFIO_GET_API_VERSION(), 0, "VFIO_GET_API_VERSION on " + path);
            if (version != vfio_h.VFIO_API_VERSION()) {
                throw new IllegalStateException(path + " speaks VFIO API " + version + ", Panamax " + vfio_h.VFIO_API_VERSION());
            }
            int type;
            if (Libc.ioctl(fd, vfio_h.VFIO_CHECK_EXTENSION(), vfio_h.VFIO_TYPE1v2_IOMMU(), "VFIO_CHECK_EXTENSION") > 0) {
                type = vfio_h.VFIO_TYPE1v2_IOMMU();
            } else if (Libc.ioctl(fd, vfio_h.VFIO_CHECK_EXTENSION(), vfio_h.VFIO_TYPE1_IOMMU(), "VFIO_CHECK_EXTENSION") > 0) {
                type = vfio_h.VFIO_TYPE1_IOMMU();
            } else {
                throw new IllegalStateException(path + " supports no Type1 IOMMU: load vfio_iommu_type1");
            }
            return new VfioContainer(path, fd, type);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /** @return the container's file descriptor */
    public int fd() {
        return fd;
    }

    /** @return {@code VFIO_TYPE1v2_IOMMU} or {@code VFIO_TYPE1_IOMMU} */
    public int iommuType() {
        return iommuType;
    }

    /**
     * Puts {@code group} into this container ({@code VFIO_GROUP_SET_CONTAINER}); for the first group, then sets
     * the IOMMU model ({@code VFIO_SET_IOMMU}).
     */
    public synchronized void attach(VfioGroup group) {
        group.setContainer(fd);
        if (!iommuSet) {
            Libc.ioctl(fd, vfio_h.VFIO_SET_IOMMU(), iommuType, "VFIO_SET_IOMMU type " + iommuType + " on " + path);
            iommuSet = true;
        }
    }

    /**
     * {@code VFIO_IOMMU_MAP_DMA} of {@code region}'s host mapping (vaddr = {@code region.host().address()}; the fd
     * is not needed). Pins the pages: the process's RLIMIT_MEMLOCK must allow it.
     *
     * @throws LinuxException e.g. ENOMEM when the locked-memory limit is too low, EEXIST when iova is mapped
     */
    @Override
    public void dmaMap(long iova, RamRegion region, int flags) {
        MemorySegment host = region.host();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment map = vfio_iommu_type1_dma_map.allocate(arena);
            vfio_iommu_type1_dma_map.argsz(map, (int) vfio_iommu_type1_dma_map.sizeof());
            vfio_iommu_type1_dma_map.flags(map, flags);
            vfio_iommu_type1_dma_map.vaddr(map, host.address());
            vfio_iommu_type1_dma_map.iova(map, iova);
            vfio_iommu_type1_dma_map.size(map, host.byteSize());
            Libc.ioctl(fd, vfio_h.VFIO_IOMMU_MAP_DMA(), map, String.format(
                    "VFIO_IOMMU_MAP_DMA iova 0x%x size 0x%x (if ENOMEM: raise ulimit -l)", iova, host.byteSize()));
        }
    }

    /** {@code VFIO_IOMMU_UNMAP_DMA}. */
    @Override
    public void dmaUnmap(long iova, long size) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment unmap = vfio_iommu_type1_dma_unmap.allocate(arena);
            vfio_iommu_type1_dma_unmap.argsz(unmap, (int) vfio_iommu_type1_dma_unmap.sizeof());
            vfio_iommu_type1_dma_unmap.iova(unmap, iova);
            vfio_iommu_type1_dma_unmap.size(unmap, size);
            Libc.ioctl(fd, vfio_h.VFIO_IOMMU_UNMAP_DMA(), unmap, String.format("VFIO_IOMMU_UNMAP_DMA iova 0x%x size 0x%x", iova, size));
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.close(fd);
        }
    }
}
