package dev.panamax.vfio;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.vfio.bindings.vfio_device_feature;
import dev.panamax.vfio.bindings.vfio_device_feature_mig_state;
import dev.panamax.vfio.bindings.vfio_device_feature_migration;
import dev.panamax.vfio.bindings.vfio_h;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Migration v2 of a kernel VFIO device ({@code <linux/vfio.h>}: {@code VFIO_DEVICE_FEATURE} with
 * {@code VFIO_DEVICE_FEATURE_MIGRATION} and {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}): the device's migration
 * flags, its state, transitions walked arc by arc ({@link VfioDeviceMigState#nextStep}), and its data through the
 * {@code data_fd} the kernel returns on entering STOP_COPY (read until end of file) or RESUMING (written). The data fd
 * is closed when the device leaves that state and by {@link #close}. Errors are {@link LinuxException} (the ioctl or
 * read/write, naming the device) or {@link IllegalStateException} (one line naming the device).
 */
public final class KernelVfioMigration implements AutoCloseable {
    /** Bytes per read(2)/write(2) of the data fd. */
    static final int CHUNK = 1 << 20;
    private final String name;
    private final int deviceFd;
    private final long flags;
    /** The data fd of the STOP_COPY or RESUMING session, or -1. */
    private int dataFd = -1;

    private KernelVfioMigration(String name, int deviceFd, long flags) {
        this.name = name;
        this.deviceFd = deviceFd;
        this.flags = flags;
    }

    /**
     * GET {@code VFIO_DEVICE_FEATURE_MIGRATION} on the device file {@code deviceFd} (not owned).
     *
     * @return the device's migration, or null when its driver has none (ENOTTY, EINVAL or EOPNOTSUPP)
     * @throws LinuxException for another error
     * @throws IllegalStateException when the flags lack {@code VFIO_MIGRATION_STOP_COPY} (vfio.h: "at least
     *         VFIO_MIGRATION_STOP_COPY must be set")
     */
    static KernelVfioMigration probe(String name, int deviceFd) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = feature(arena, vfio_h.VFIO_DEVICE_FEATURE_MIGRATION() | vfio_h.VFIO_DEVICE_FEATURE_GET(),
                    vfio_device_feature_migration.sizeof());
            int r = Libc.ioctlRaw(deviceFd, vfio_h.VFIO_DEVICE_FEATURE(), f);
            if (r == -Errno.ENOTTY || r == -Errno.EINVAL || r == -Errno.EOPNOTSUPP) {
                return null;
            }
            if (r < 0) {
                throw new LinuxException("VFIO_DEVICE_FEATURE GET MIGRATION on " + name, -r);
            }
            long flags = vfio_device_feature_migration.flags(data(f));
            if ((flags & vfio_h.VFIO_MIGRATION_STOP_COPY()) == 0) {
                throw new IllegalStateException(name + ": migration flags 0x" + Long.toHexString(flags)
                        + " lack VFIO_MIGRATION_STOP_COPY");
            }
            return new KernelVfioMigration(name, deviceFd, flags);
        }
    }

    /** A {@code struct vfio_device_feature} of {@code flags} with {@code dataBytes} of data after it. */
    private static MemorySegment feature(Arena arena, int flags, long dataBytes) {
        long argsz = vfio_device_feature.sizeof() + dataBytes;
        MemorySegment f = arena.allocate(argsz, 8);
        vfio_device_feature.argsz(f, (int) argsz);
        vfio_device_feature.flags(f, flags);
        return f;
    }

    private static MemorySegment data(MemorySegment feature) {
        return feature.asSlice(vfio_device_feature.data$offset());
    }

    /** @return {@code struct vfio_device_feature_migration.flags}: {@code VFIO_MIGRATION_STOP_COPY} (always), {@code _P2P} */
    public long flags() {
        return flags;
    }

    /** @return the device's state (GET {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}) */
    public synchronized VfioDeviceMigState state() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = feature(arena, vfio_h.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE() | vfio_h.VFIO_DEVICE_FEATURE_GET(),
                    vfio_device_feature_mig_state.sizeof());
            Libc.ioctl(deviceFd, vfio_h.VFIO_DEVICE_FEATURE(), f, "VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE on " + name);
            int code = vfio_device_feature_mig_state.device_state(data(f));
            try {
                return VfioDeviceMigState.of(code);
            } catch (IllegalArgumentException e) {
                throw new IllegalStateException(name + ": " + e.getMessage(), e);
            }
        }
    }

    /**
     * Moves the device to {@code target}, one arc at a time (SET {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}); keeps
     * the data fd the kernel returns on entering STOP_COPY or RESUMING, and closes it when the device leaves that state.
     *
     * @throws IllegalStateException when no path leads there for this device's flags
     * @throws LinuxException        when the kernel refuses an arc (the device may stand on an intermediate state)
     */
    public synchronized void setState(VfioDeviceMigState target) {
        VfioDeviceMigState now = state();
        while (now != target) {
            VfioDeviceMigState next = now.nextStep(target, flags);
            if (next == VfioDeviceMigState.ERROR) {
                throw new IllegalStateException(name + ": no migration arc from " + now + " to " + target
                        + " (flags 0x" + Long.toHexString(flags) + ")");
            }
            int fd = set(next);
            closeDataFd();
            if (next == VfioDeviceMigState.STOP_COPY || next == VfioDeviceMigState.RESUMING) {
                if (fd < 0) {
                    throw new IllegalStateException(name + ": the kernel returned no data_fd on entering " + next);
                }
                dataFd = fd;
            } else if (fd >= 0) {
                Libc.close(fd);
            }
            now = next;
        }
    }

    /** One arc; returns {@code data_fd} (-1 when none). */
    private int set(VfioDeviceMigState next) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment f = feature(arena, vfio_h.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE() | vfio_h.VFIO_DEVICE_FEATURE_SET(),
                    vfio_device_feature_mig_state.sizeof());
            vfio_device_feature_mig_state.device_state(data(f), next.code());
            vfio_device_feature_mig_state.data_fd(data(f), -1);
            Libc.ioctl(deviceFd, vfio_h.VFIO_DEVICE_FEATURE(), f, "VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE " + next + " on " + name);
            return vfio_device_feature_mig_state.data_fd(data(f));
        }
    }

    /**
     * Reads the device's data in STOP_COPY from the data fd until end of file.
     *
     * @param limitBytes the most bytes taken
     * @throws IllegalStateException when not in a STOP_COPY session, or the device has more than {@code limitBytes}
     */
    public synchronized byte[] readAll(long limitBytes) {
        return readStream(requireDataFd("read"), limitBytes, "migration data of " + name);
    }

    /**
     * Writes {@code data} to the data fd in RESUMING; the device loads it on the arc RESUMING → STOP.
     *
     * @throws IllegalStateException when not in a RESUMING session, or write(2) makes no progress
     */
    public synchronized void writeAll(byte[] data) {
        writeStream(requireDataFd("write"), data, "migration data of " + name);
    }

    private int requireDataFd(String access) {
        if (dataFd < 0) {
            throw new IllegalStateException(name + ": no migration data fd to " + access + " (not in STOP_COPY or RESUMING)");
        }
        return dataFd;
    }

    /** read(2) of {@code fd} until end of file, at most {@code limitBytes}; EINTR retried. */
    static byte[] readStream(int fd, long limitBytes, String what) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(CHUNK, 8);
            while (true) {
                long n = Libc.readRaw(fd, buffer);
                if (n == -Errno.EINTR) {
                    continue;
                }
                if (n < 0) {
                    throw new LinuxException("read " + what, (int) -n);
                }
                if (n == 0) {
                    return all.toByteArray();
                }
                if (all.size() + n > limitBytes) {
                    throw new IllegalStateException(what + ": more than " + limitBytes + " bytes");
                }
                all.write(buffer.asSlice(0, n).toArray(ValueLayout.JAVA_BYTE), 0, (int) n);
            }
        }
    }

    /** write(2) of all of {@code data} to {@code fd}, short writes continued; EINTR retried. */
    static void writeStream(int fd, byte[] data, String what) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(Math.max(1, Math.min(CHUNK, data.length)), 8);
            for (int at = 0; at < data.length; ) {
                int len = (int) Math.min(buffer.byteSize(), data.length - at);
                MemorySegment chunk = buffer.asSlice(0, len);
                MemorySegment.copy(data, at, chunk, ValueLayout.JAVA_BYTE, 0, len);
                long n = Libc.writeRaw(fd, chunk);
                if (n == -Errno.EINTR) {
                    continue;
                }
                if (n < 0) {
                    throw new LinuxException("write " + what, (int) -n);
                }
                if (n == 0) {
                    throw new IllegalStateException("write " + what + ": no progress at byte " + at + " of " + data.length);
                }
                at += (int) n;
            }
        }
    }

    private void closeDataFd() {
        if (dataFd >= 0) {
            int fd = dataFd;
            dataFd = -1;
            Libc.close(fd);
        }
    }

    /** Closes the data fd, if any; the device fd is its owner's. */
    @Override
    public synchronized void close() {
        closeDataFd();
    }
}
