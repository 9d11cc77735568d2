package dev.panamax.vfio;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.bindings.vfio_group_status;
import dev.panamax.vfio.bindings.vfio_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

/**
 * A VFIO group ({@code /dev/vfio/N}): the devices of one IOMMU group, the unit of isolation. It is viable
 * when every device of the IOMMU group is bound to vfio-pci (or to no driver); then it joins a
 * {@link VfioContainer} and hands out device file descriptors by PCI address. See {@code <linux/vfio.h>}.
 */
public final class VfioGroup implements AutoCloseable {
    private final int number;
    private final Path path;
    private final int fd;
    private boolean closed;

    private VfioGroup(int number, Path path, int fd) {
        this.number = number;
        this.path = path;
        this.fd = fd;
    }

    /**
     * Opens {@code devVfio/N} and checks that the group is viable.
     *
     * @param devVfio the VFIO device directory, {@code /dev/vfio} on a host
     * @param number  the IOMMU group number (see {@link PciSysfs#vfioGroup})
     * @throws IllegalStateException with what to do: missing, no permission, busy, or not viable
     */
    public static VfioGroup open(Path devVfio, int number) {
        Path path = devVfio.resolve(Integer.toString(number));
        int fd;
        try {
            fd = Libc.open(path.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        } catch (LinuxException e) {
            throw new IllegalStateException(switch (e.errno()) {
                case Errno.ENOENT -> path + " is missing: bind the group's devices to vfio-pci";
                case Errno.EACCES, Errno.EPERM -> "no permission to open " + path + ": run as root or chown the file to this user";
                case Errno.EBUSY -> path + " is busy: another process (a VMM?) holds IOMMU group " + number;
                default -> e.getMessage();
            });
        }
        VfioGroup group = new VfioGroup(number, path, fd);
        try {
            if (!group.viable()) {
                throw new IllegalStateException("IOMMU group " + number + " is not viable: bind every device in "
                        + "/sys/kernel/iommu_groups/" + number + "/devices to vfio-pci (or unbind it)");
            }
        } catch (RuntimeException e) {
            group.close();
            throw e;
        }
        return group;
    }

    /** @return the IOMMU group number */
    public int number() {
        return number;
    }

    /** @return {@code VFIO_GROUP_GET_STATUS} flags ({@code VFIO_GROUP_FLAGS_*}) */
    public int status() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment status = vfio_group_status.allocate(arena);
            vfio_group_status.argsz(status, (int) vfio_group_status.sizeof());
            Libc.ioctl(fd, vfio_h.VFIO_GROUP_GET_STATUS(), status, "VFIO_GROUP_GET_STATUS on " + path);
            return vfio_group_status.flags(status);
        }
    }

    /** @return true if every device of the group is bound to vfio-pci or to no driver */
    public boolean viable() {
        return (status() & vfio_h.VFIO_GROUP_FLAGS_VIABLE()) != 0;
    }

    /** {@code VFIO_GROUP_SET_CONTAINER}; use {@link VfioContainer#attach}, which also sets the IOMMU model. */
    void setContainer(int containerFd) {
        try (Arena arena = Arena.ofConfined()) {
            Libc.ioctl(fd, vfio_h.VFIO_GROUP_SET_CONTAINER(), arena.allocateFrom(ValueLayout.JAVA_INT, containerFd),
                    "VFIO_GROUP_SET_CONTAINER on " + path);
        }
    }

    /**
     * {@code VFIO_GROUP_GET_DEVICE_FD}: the device's file descriptor. The group must be in a container.
     *
     * @param bdf the PCI address as sysfs spells it, {@code DDDD:BB:DD.F}
     * @throws IllegalStateException if the device is not in this group
     */
    public int deviceFd(String bdf) {
        try (Arena arena = Arena.ofConfined()) {
            return Libc.ioctl(fd, vfio_h.VFIO_GROUP_GET_DEVICE_FD(), arena.allocateFrom(bdf),
                    "VFIO_GROUP_GET_DEVICE_FD " + bdf + " on " + path);
        } catch (LinuxException e) {
            throw new IllegalStateException("PCI device " + bdf + ": cannot get it from IOMMU group " + number + ": "
                    + e.getMessage(), e);
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
