package dev.panamax.pci;

import dev.panamax.core.memory.X86Layout;

/**
 * Places BARs as firmware would before the kernel boots, each aligned to its size (PCI 3.0, 6.2.5.1: a BAR decodes
 * a naturally aligned range): 32-bit memory in the 32-bit window of the PCI hole ({@link X86Layout#PCI_MMIO32_START}
 * .. {@link X86Layout#PCI_MMIO32_END}), 64-bit memory in the 64-bit window above RAM (of any power-of-two size it can
 * hold: a GPU's BAR of many GiB), I/O ports from 0xC000 up to 0x10000. Linux keeps these assignments when they are
 * valid and lie inside the host bridge's windows (the ACPI {@code _CRS} describes the same {@link #windows()}).
 *
 * <p>Each window is filled upwards. All bounds are checked without overflow: a BAR that does not fit is refused
 * with an {@link IllegalStateException} naming the window; {@link #assign} adds the function and the BAR.
 */
public final class PciBarAllocator {
    /** First I/O port handed out: above the legacy ISA devices, as PC firmware does. */
    public static final long IO_START = 0xC000;
    /** End of the x86 I/O space. */
    public static final long IO_END = 0x10000;

    /**
     * The address ranges BARs are placed in, for the firmware's description of the host bridge ({@code _CRS}).
     * All ends are exclusive; guest-physical addresses, or ports for I/O.
     */
    public record Windows(long ioStart, long ioEnd, long mmio32Start, long mmio32End, long mmio64Start, long mmio64End) {
    }

    private final Windows windows;
    private long nextIo;
    private long next32;
    private long next64;

    /**
     * The machine's windows: {@link X86Layout}'s 32-bit window and {@code [mmio64Start, mmio64End)}.
     *
     * @param mmio64Start guest-physical address where 64-bit BARs start ({@link X86Layout#pciMmio64Start})
     * @param mmio64End   end (exclusive) of the 64-bit window ({@link X86Layout#pciMmio64End})
     */
    public PciBarAllocator(long mmio64Start, long mmio64End) {
        this(X86Layout.PCI_MMIO32_START, X86Layout.PCI_MMIO32_END, mmio64Start, mmio64End);
    }

    /**
     * @param mmio32Start start of the 32-bit window, bytes
     * @param mmio32End   end (exclusive) of the 32-bit window, at most 4 GiB
     * @param mmio64Start start of the 64-bit window
     * @param mmio64End   end (exclusive) of the 64-bit window
     * @throws IllegalArgumentException if a window ends before it starts, or the 32-bit one is not below 4 GiB
     */
    public PciBarAllocator(long mmio32Start, long mmio32End, long mmio64Start, long mmio64End) {
        if (mmio32Start < 0 || mmio32End < mmio32Start || mmio32End > X86Layout.HIGH_RAM_START
                || mmio64Start < 0 || mmio64End < mmio64Start) {
            throw new IllegalArgumentException(String.format("PCI MMIO windows [0x%x, 0x%x) and [0x%x, 0x%x) are not valid",
                    mmio32Start, mmio32End, mmio64Start, mmio64End));
        }
        this.windows = new Windows(IO_START, IO_END, mmio32Start, mmio32End, mmio64Start, mmio64End);
        this.nextIo = IO_START;
        this.next32 = mmio32Start;
        this.next64 = mmio64Start;
    }

    /** @return the windows this allocator places BARs in */
    public Windows windows() {
        return windows;
    }

    /**
     * Picks an address for one BAR.
     *
     * @return guest-physical address or port, aligned to {@code bar.size()}
     * @throws IllegalStateException if its window has no aligned room left for it, naming the window
     */
    public long allocate(PciBar bar) {
        long size = bar.size();
        return switch (bar.kind()) {
            case IO -> {
                long at = place(nextIo, IO_END, size, "I/O window [0x%x, 0x%x)".formatted(IO_START, IO_END));
                nextIo = at + size;
                yield at;
            }
            case MEMORY32 -> {
                long at = place(next32, windows.mmio32End(), size,
                        "32-bit MMIO window [0x%x, 0x%x)".formatted(windows.mmio32Start(), windows.mmio32End()));
                next32 = at + size;
                yield at;
            }
            case MEMORY64 -> {
                long at = place(next64, windows.mmio64End(), size,
                        "64-bit MMIO window [0x%x, 0x%x)".formatted(windows.mmio64Start(), windows.mmio64End()));
                next64 = at + size;
                yield at;
            }
        };
    }

    /**
     * @return the first address at or above {@code next} aligned to {@code size} (a power of two) where
     *         {@code size} bytes end at or below {@code end}
     */
    private static long place(long next, long end, long size, String window) {
        long at = (next + size - 1) & -size; // next and size are below 2^62: no overflow
        if (at < next || at > end || size > end - at) {
            throw new IllegalStateException(String.format("no room in the PCI %s: 0x%x of it is free from 0x%x, "
                    + "aligned to the BAR's size", window, Math.max(0, end - next), next));
        }
        return at;
    }

    /**
     * Allocates and programs every BAR of {@code function}, largest first within each window to waste less.
     *
     * @throws IllegalStateException naming the function, the BAR and its size when a BAR does not fit its window
     */
    public void assign(PciFunction function) {
        Integer[] order = {0, 1, 2, 3, 4, 5};
        java.util.Arrays.sort(order, (a, b) -> Long.compare(sizeOf(function, b), sizeOf(function, a)));
        for (int i : order) {
            PciBar bar = function.bar(i);
            if (bar != null) {
                long at;
                try {
                    at = allocate(bar);
                } catch (IllegalStateException e) {
                    throw new IllegalStateException(String.format("PCI device %s: BAR %d (%s, %s) does not fit: %s",
                            function.name(), i, describe(bar), bytes(bar.size()), e.getMessage()), e);
                }
                function.setBarAddress(i, at);
            }
        }
    }

    private static String describe(PciBar bar) {
        return switch (bar.kind()) {
            case IO -> "I/O";
            case MEMORY32 -> "32-bit memory" + (bar.prefetchable() ? ", prefetchable" : "");
            case MEMORY64 -> "64-bit memory" + (bar.prefetchable() ? ", prefetchable" : "");
        };
    }

    /** @return {@code size} (a power of two) in the largest binary unit that divides it: "64 GiB", "16 KiB", "32 bytes" */
    static String bytes(long size) {
        String[] units = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int u = 0;
        while (u < units.length - 1 && size >= 1024 && size % 1024 == 0) {
            size /= 1024;
            u++;
        }
        return size + " " + units[u];
    }

    private static long sizeOf(PciFunction f, int index) {
        PciBar bar = f.bar(index);
        return bar == null ? 0 : bar.size();
    }
}
