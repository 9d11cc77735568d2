package dev.panamax.pci;

/**
 * What a base address register decodes (PCI 3.0, 6.2.5.1): a memory range (32-bit or 64-bit, optionally
 * prefetchable) or an I/O port range, of a power-of-two size.
 *
 * <p>The low bits of the BAR are its type flags, read-only: bit 0 is 1 for I/O; for memory bits 2..1 are the
 * type (00 32-bit, 10 64-bit) and bit 3 is prefetchable. The address bits below the size are read-only zero,
 * which is how software sizes a BAR: it writes all ones and reads back {@code ~(size - 1) | flags}.
 *
 * @param kind         memory 32-bit, memory 64-bit, or I/O
 * @param size         bytes; a power of two, at least 16 for memory and 4 for I/O; at most 2 GiB for 32-bit
 *                     memory, 256 for I/O (PCI 3.0 limits I/O BARs to 256 bytes)
 * @param prefetchable the prefetchable bit (memory only)
 */
public record PciBar(Kind kind, long size, boolean prefetchable) {
    /** The decoder type. */
    public enum Kind {
        /** Memory, anywhere in the 32-bit address space. */
        MEMORY32,
        /** Memory, anywhere in the 64-bit address space; takes this BAR and the next. */
        MEMORY64,
        /** I/O ports. */
        IO
    }

    /** Bit 0: the BAR decodes I/O space. */
    public static final int SPACE_IO = 0x1;
    /** Bits 2..1 = 10: a 64-bit memory BAR. */
    public static final int MEM_TYPE_64 = 0x4;
    /** Bit 3: prefetchable memory. */
    public static final int MEM_PREFETCH = 0x8;
    /** The address bits of a memory BAR's low dword. */
    public static final int MEM_MASK = 0xFFFF_FFF0;
    /** The address bits of an I/O BAR. */
    public static final int IO_MASK = 0xFFFF_FFFC;

    /** @throws IllegalArgumentException if the size is not a power of two in range, or an I/O BAR is prefetchable */
    public PciBar {
        if (kind == null) {
            throw new IllegalArgumentException("PCI BAR kind is null");
        }
        long min = kind == Kind.IO ? 4 : 16;
        long max = switch (kind) {
            case IO -> 256;
            case MEMORY32 -> 1L << 31;
            case MEMORY64 -> 1L << 62;
        };
        if (Long.bitCount(size) != 1 || size < min || size > max) {
            throw new IllegalArgumentException(String.format(
                    "PCI %s BAR size 0x%x is not a power of two in 0x%x..0x%x", kind, size, min, max));
        }
        if (kind == Kind.IO && prefetchable) {
            throw new IllegalArgumentException("PCI I/O BAR cannot be prefetchable");
        }
    }

    /** @return a 32-bit non-prefetchable memory BAR of {@code size} bytes */
    public static PciBar memory32(long size) {
        return new PciBar(Kind.MEMORY32, size, false);
    }

    /** @return a 64-bit memory BAR of {@code size} bytes */
    public static PciBar memory64(long size, boolean prefetchable) {
        return new PciBar(Kind.MEMORY64, size, prefetchable);
    }

    /** @return an I/O BAR of {@code size} bytes */
    public static PciBar io(long size) {
        return new PciBar(Kind.IO, size, false);
    }

    /** @return true for an I/O BAR */
    public boolean isIo() {
        return kind == Kind.IO;
    }

    /** @return true for a 64-bit memory BAR (which takes two BAR slots) */
    public boolean is64() {
        return kind == Kind.MEMORY64;
    }

    /** @return the read-only flag bits of the low dword */
    public int flags() {
        return switch (kind) {
            case IO -> SPACE_IO;
            case MEMORY32 -> prefetchable ? MEM_PREFETCH : 0;
            case MEMORY64 -> MEM_TYPE_64 | (prefetchable ? MEM_PREFETCH : 0);
        };
    }
}
