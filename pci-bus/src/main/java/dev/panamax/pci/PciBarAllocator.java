package dev.panamax.pci;

import dev.panamax.core.memory.X86Layout;

/**
 * Places BARs as firmware would before the kernel boots, each aligned to its size: 32-bit memory in the PCI
 * hole from 0xC0000000 up to the IOAPIC at 0xFEC00000 ({@link X86Layout}), 64-bit memory from a given start
 * above RAM, I/O ports from 0xC000 up to 0x10000. Linux keeps these assignments when they are valid.
 */
public final class PciBarAllocator {
    /** First I/O port handed out: above the legacy ISA devices, as PC firmware does. */
    public static final long IO_START = 0xC000;
    /** End of the x86 I/O space. */
    public static final long IO_END = 0x10000;

    private long next32;
    private final long end32;
    private long next64;
    private long nextIo;

    /**
     * @param mmio64Start guest-physical address where 64-bit BARs start: at or above the end of RAM
     *                    (e.g. 4 GiB + RAM above 4 GiB, rounded up)
     */
    public PciBarAllocator(long mmio64Start) {
        this(X86Layout.PCI_HOLE_START, X86Layout.IOAPIC_BASE, mmio64Start);
    }

    /**
     * @param mmio32Start start of the 32-bit window, bytes
     * @param mmio32End   end (exclusive) of the 32-bit window
     * @param mmio64Start start of the 64-bit window (it has no end)
     */
    public PciBarAllocator(long mmio32Start, long mmio32End, long mmio64Start) {
        this.next32 = mmio32Start;
        this.end32 = mmio32End;
        this.next64 = mmio64Start;
        this.nextIo = IO_START;
    }

    /**
     * Picks an address for one BAR.
     *
     * @return guest-physical address or port, aligned to {@code bar.size()}
     * @throws IllegalStateException if its window is full
     */
    public long allocate(PciBar bar) {
        long size = bar.size();
        return switch (bar.kind()) {
            case IO -> {
                long at = align(nextIo, size);
                if (at + size > IO_END) {
                    throw new IllegalStateException(String.format("PCI I/O window is full: no room for 0x%x ports", size));
                }
                nextIo = at + size;
                yield at;
            }
            case MEMORY32 -> {
                long at = align(next32, size);
                if (at + size > end32) {
                    throw new IllegalStateException(String.format(
                            "PCI 32-bit MMIO window is full: no room for 0x%x bytes below 0x%x", size, end32));
                }
                next32 = at + size;
                yield at;
            }
            case MEMORY64 -> {
                long at = align(next64, size);
                next64 = at + size;
                yield at;
            }
        };
    }

    /** Allocates and programs every BAR of {@code function}, largest first within each window to waste less. */
    public void assign(PciFunction function) {
        Integer[] order = {0, 1, 2, 3, 4, 5};
        java.util.Arrays.sort(order, (a, b) -> Long.compare(sizeOf(function, b), sizeOf(function, a)));
        for (int i : order) {
            PciBar bar = function.bar(i);
            if (bar != null) {
                function.setBarAddress(i, allocate(bar));
            }
        }
    }

    private static long sizeOf(PciFunction f, int index) {
        PciBar bar = f.bar(index);
        return bar == null ? 0 : bar.size();
    }

    private static long align(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }
}
