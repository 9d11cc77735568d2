package dev.panamax.vfio;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The operations a VFIO device offers, independent of how they reach it: ioctls and pread/pwrite on a kernel
 * VFIO device file ({@link KernelVfioDevice}), or messages to a vfio-user server. This is the seam QEMU draws
 * with its {@code VFIODeviceIOOps} vector: device, region and IRQ info, SET_IRQS, region read/write, mmap and
 * reset. Names, indexes and flags are those of {@code <linux/vfio.h>}.
 *
 * <p>Region offsets are bytes from the start of the region (not of the device file). Errors throw a
 * {@link RuntimeException} whose message names the device and the operation ({@code LinuxException} for the
 * kernel).
 */
public interface VfioDeviceIo extends AutoCloseable {
    /** @return a short name for messages, e.g. the BDF {@code "0000:01:00.0"} */
    String name();

    /** {@code VFIO_DEVICE_GET_INFO}. */
    VfioDeviceInfo deviceInfo();

    /** {@code VFIO_DEVICE_GET_REGION_INFO} for region {@code index}, with its capability chain. */
    VfioRegionInfo regionInfo(int index);

    /** {@code VFIO_DEVICE_GET_IRQ_INFO} for IRQ index {@code index}. */
    VfioIrqInfo irqInfo(int index);

    /** {@code VFIO_DEVICE_SET_IRQS}. */
    void setIrqs(VfioIrqSet set);

    /**
     * Reads {@code buffer.byteSize()} bytes of region {@code index} at {@code offset} into {@code buffer}.
     *
     * @throws RuntimeException if the device gives fewer bytes or refuses
     */
    void regionRead(int index, long offset, MemorySegment buffer);

    /** Writes {@code buffer} to region {@code index} at {@code offset}. */
    void regionWrite(int index, long offset, MemorySegment buffer);

    /**
     * Maps {@code [offset, offset + size)} of region {@code index} into this process, shared, read and write.
     * Allowed only inside {@link VfioRegionInfo#mmapAreas()}; page aligned. Unmap with
     * {@code Libc.munmap}.
     *
     * @return the mapping, {@code size} bytes at its host-virtual address
     * @throws IllegalArgumentException if the range is not one the region allows to map
     */
    MemorySegment mmap(int index, long offset, long size);

    /** {@code VFIO_DEVICE_RESET}: function-level (or other) reset of the device. */
    void reset();

    /** Releases the device. */
    @Override
    void close();

    /**
     * Reads a little-endian value of {@code size} bytes (1, 2, 4 or 8) from region {@code index}: a register.
     *
     * @return the value, zero-extended
     */
    default long regionRead(int index, long offset, int size) {
        checkSize(size);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(size, 8);
            regionRead(index, offset, b);
            long v = 0;
            for (int i = 0; i < size; i++) {
                v |= (long) Byte.toUnsignedInt(b.get(ValueLayout.JAVA_BYTE, i)) << (8 * i);
            }
            return v;
        }
    }

    /** Writes the low {@code size} bytes (1, 2, 4 or 8) of {@code value}, little-endian, to region {@code index}. */
    default void regionWrite(int index, long offset, int size, long value) {
        checkSize(size);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment b = arena.allocate(size, 8);
            for (int i = 0; i < size; i++) {
                b.set(ValueLayout.JAVA_BYTE, i, (byte) (value >>> (8 * i)));
            }
            regionWrite(index, offset, b);
        }
    }

    private static void checkSize(int size) {
        if (size != 1 && size != 2 && size != 4 && size != 8) {
            throw new IllegalArgumentException("region access of " + size + " bytes is not 1, 2, 4 or 8");
        }
    }
}
