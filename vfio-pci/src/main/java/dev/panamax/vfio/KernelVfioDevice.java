package dev.panamax.vfio;

import dev.panamax.core.sys.Libc;
import dev.panamax.vfio.bindings.vfio_device_info;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfio.bindings.vfio_irq_info;
import dev.panamax.vfio.bindings.vfio_irq_set;
import dev.panamax.vfio.bindings.vfio_region_info;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;

/**
 * {@link VfioDeviceIo} over the kernel's VFIO: ioctls on the device file descriptor, and {@code pread}/
 * {@code pwrite}/{@code mmap} at {@code region offset + offset} in that file. Each ioctl is one line at TRACE
 * on {@code dev.panamax.trace.vfio} ({@code --trace}).
 */
public final class KernelVfioDevice implements VfioDeviceIo {
    private static final Logger trace = LoggerFactory.getLogger("dev.panamax.trace.vfio");
    private final String name;
    private final int fd;
    private final VfioGroup group;
    private final Map<Integer, VfioRegionInfo> regions = new HashMap<>();
    private boolean closed;
    private boolean migrationProbed;
    private KernelVfioMigration migration;

    /**
     * @param name  for messages, e.g. the BDF
     * @param fd    a device file descriptor from {@link VfioGroup#deviceFd}; owned by this object
     * @param group the group to close with the device, or null
     */
    public KernelVfioDevice(String name, int fd, VfioGroup group) {
        this.name = name;
        this.fd = fd;
        this.group = group;
    }

    /**
     * Opens the host's PCI device {@code bdf} for assignment: checks sysfs ({@code /sys}), opens its group in
     * {@code /dev/vfio}, attaches it to {@code container} and gets the device.
     *
     * @throws IllegalStateException with one line naming the device and what to do
     */
    public static KernelVfioDevice open(String bdf, VfioContainer container) {
        return open(PciSysfs.host(), Path.of("/dev/vfio"), bdf, container);
    }

    /** As {@link #open(String, VfioContainer)} with the sysfs root and VFIO device directory given. */
    public static KernelVfioDevice open(PciSysfs sysfs, Path devVfio, String bdf, VfioContainer container) {
        String b = PciSysfs.normalizeBdf(bdf);
        int number = sysfs.vfioGroup(b);
        VfioGroup group = VfioGroup.open(devVfio, number);
        try {
            container.attach(group);
            return new KernelVfioDevice(b, group.deviceFd(b), group);
        } catch (RuntimeException e) {
            group.close();
            throw e;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public VfioDeviceInfo deviceInfo() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment info = vfio_device_info.allocate(arena);
            vfio_device_info.argsz(info, (int) vfio_device_info.sizeof());
            Libc.ioctl(fd, vfio_h.VFIO_DEVICE_GET_INFO(), info, "VFIO_DEVICE_GET_INFO on " + name);
            VfioDeviceInfo d = new VfioDeviceInfo(vfio_device_info.flags(info), vfio_device_info.num_regions(info),
                    vfio_device_info.num_irqs(info));
            if (trace.isTraceEnabled()) {
                trace.trace("{} VFIO_DEVICE_GET_INFO -> flags 0x{} regions {} irqs {}", name,
                        Integer.toHexString(d.flags()), d.numRegions(), d.numIrqs());
            }
            return d;
        }
    }

    /** Asks twice when the capability chain does not fit: the kernel answers the size it needs in argsz. */
    @Override
    public synchronized VfioRegionInfo regionInfo(int index) {
        VfioRegionInfo known = regions.get(index);
        if (known != null) {
            return known;
        }
        try (Arena arena = Arena.ofConfined()) {
            long argsz = vfio_region_info.sizeof();
            while (true) {
                MemorySegment info = arena.allocate(argsz, 8);
                vfio_region_info.argsz(info, (int) argsz);
                vfio_region_info.index(info, index);
                Libc.ioctl(fd, vfio_h.VFIO_DEVICE_GET_REGION_INFO(), info,
                        "VFIO_DEVICE_GET_REGION_INFO region " + index + " on " + name);
                long needed = Integer.toUnsignedLong(vfio_region_info.argsz(info));
                if (needed > argsz) {
                    argsz = needed;
                    continue;
                }
                VfioRegionInfo parsed = VfioRegionInfo.parse(info);
                if (trace.isTraceEnabled()) {
                    trace.trace("{} VFIO_DEVICE_GET_REGION_INFO -> {}", name, VfioNames.regionInfo(parsed));
                }
                regions.put(index, parsed);
                return parsed;
            }
        }
    }

    @Override
    public VfioIrqInfo irqInfo(int index) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment info = vfio_irq_info.allocate(arena);
            vfio_irq_info.argsz(info, (int) vfio_irq_info.sizeof());
            vfio_irq_info.index(info, index);
            Libc.ioctl(fd, vfio_h.VFIO_DEVICE_GET_IRQ_INFO(), info, "VFIO_DEVICE_GET_IRQ_INFO index " + index + " on " + name);
            VfioIrqInfo i = new VfioIrqInfo(index, vfio_irq_info.flags(info), vfio_irq_info.count(info));
            if (trace.isTraceEnabled()) {
                trace.trace("{} VFIO_DEVICE_GET_IRQ_INFO -> {}", name, VfioNames.irqInfo(i));
            }
            return i;
        }
    }

    @Override
    public void setIrqs(VfioIrqSet set) {
        if (trace.isTraceEnabled()) {
            trace.trace("{} VFIO_DEVICE_SET_IRQS {}", name, VfioNames.irqSet(set));
        }
        try (Arena arena = Arena.ofConfined()) {
            long argsz = vfio_irq_set.sizeof() + set.dataBytes();
            MemorySegment s = arena.allocate(argsz, 8);
            encode(set, s);
            Libc.ioctl(fd, vfio_h.VFIO_DEVICE_SET_IRQS(), s, String.format(
                    "VFIO_DEVICE_SET_IRQS index %d vectors %d+%d flags 0x%x on %s", set.index(), set.start(), set.count(), set.flags(), name));
        }
    }

    /** Writes {@code set} as a {@code struct vfio_irq_set} with its data into {@code s} (argsz bytes). */
    static void encode(VfioIrqSet set, MemorySegment s) {
        vfio_irq_set.argsz(s, (int) s.byteSize());
        vfio_irq_set.flags(s, set.flags());
        vfio_irq_set.index(s, set.index());
        vfio_irq_set.start(s, set.start());
        vfio_irq_set.count(s, set.count());
        long data = vfio_irq_set.data$offset();
        for (int i = 0; i < set.eventfds().length; i++) {
            s.set(ValueLayout.JAVA_INT_UNALIGNED, data + 4L * i, set.eventfds()[i]);
        }
        for (int i = 0; i < set.bools().length; i++) {
            s.set(ValueLayout.JAVA_BYTE, data + i, (byte) (set.bools()[i] ? 1 : 0));
        }
    }

    @Override
    public void regionRead(int index, long offset, MemorySegment buffer) {
        VfioRegionInfo r = checkRange(index, offset, buffer.byteSize(), "read");
        String what = String.format("%s region %d offset 0x%x (%d bytes)", name, index, offset, buffer.byteSize());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = buffer.isNative() ? buffer : arena.allocate(buffer.byteSize(), 8);
            long n = VfioFiles.pread(fd, b, r.offset() + offset, what);
            if (n != buffer.byteSize()) {
                throw new IllegalStateException("pread " + what + ": got " + n + " bytes");
            }
            if (b != buffer) {
                buffer.copyFrom(b);
            }
        }
    }

    @Override
    public void regionWrite(int index, long offset, MemorySegment buffer) {
        VfioRegionInfo r = checkRange(index, offset, buffer.byteSize(), "write");
        String what = String.format("%s region %d offset 0x%x (%d bytes)", name, index, offset, buffer.byteSize());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = buffer.isNative() ? buffer : arena.allocate(buffer.byteSize(), 8).copyFrom(buffer);
            long n = VfioFiles.pwrite(fd, b, r.offset() + offset, what);
            if (n != buffer.byteSize()) {
                throw new IllegalStateException("pwrite " + what + ": wrote " + n + " bytes");
            }
        }
    }

    private VfioRegionInfo checkRange(int index, long offset, long length, String access) {
        VfioRegionInfo r = regionInfo(index);
        if (offset < 0 || length < 0 || offset + length > r.size()) {
            throw new IllegalArgumentException(String.format("%s: %s of %d bytes at 0x%x is outside region %d (0x%x bytes)",
                    name, access, length, offset, index, r.size()));
        }
        return r;
    }

    @Override
    public MemorySegment mmap(int index, long offset, long size) {
        VfioRegionInfo r = regionInfo(index);
        boolean allowed = r.mmapAreas().stream().anyMatch(a -> offset >= a.offset() && offset + size <= a.offset() + a.size());
        if (!allowed || size <= 0 || (offset & 0xFFF) != 0) {
            throw new IllegalArgumentException(String.format("%s: region %d [0x%x, +0x%x) may not be mmapped (areas %s)",
                    name, index, offset, size, r.mmapAreas()));
        }
        return Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, r.offset() + offset,
                name + " region " + index);
    }

    @Override
    public void reset() {
        if (trace.isTraceEnabled()) {
            trace.trace("{} VFIO_DEVICE_RESET", name);
        }
        Libc.ioctl(fd, vfio_h.VFIO_DEVICE_RESET(), 0, "VFIO_DEVICE_RESET on " + name);
    }

    /**
     * The device's migration v2 ({@code VFIO_DEVICE_FEATURE_MIGRATION}), probed on the first call.
     *
     * @return it, or empty when the kernel driver offers none
     * @throws dev.panamax.core.sys.LinuxException for an error other than "not supported"
     */
    public synchronized Optional<KernelVfioMigration> migration() {
        if (!migrationProbed) {
            migration = KernelVfioMigration.probe(name, fd);
            migrationProbed = true;
        }
        return Optional.ofNullable(migration);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (migration != null) {
                migration.close();
            }
            Libc.close(fd);
            if (group != null) {
                group.close();
            }
        }
    }
}
