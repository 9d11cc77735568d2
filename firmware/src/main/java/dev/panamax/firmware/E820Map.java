package dev.panamax.firmware;

import dev.panamax.core.memory.X86Layout;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The physical memory map a guest's kernel reads from the zero page ({@code e820_entries} at 0x1E8,
 * {@code struct boot_e820_entry e820_table[128]} at 0x2D0; {@code arch/x86/include/uapi/asm/bootparam.h}),
 * as the BIOS INT 15h, AX=E820h call would report it (ACPI spec, "System Address Map Interfaces").
 *
 * <p>All addresses are guest-physical, sizes in bytes; entries are sorted by address and do not overlap.
 *
 * @param entries the ranges, at most {@value ZeroPage#E820_MAX_ENTRIES}
 */
public record E820Map(List<Entry> entries) {
    /** Type 1, AddressRangeMemory: usable RAM. */
    public static final int RAM = 1;
    /** Type 2, AddressRangeReserved: not to be used by the OS. */
    public static final int RESERVED = 2;

    /** Start of the extended BIOS data area, which ends the first RAM range: 639 KiB. */
    public static final long EBDA_START = 0x9FC00;
    /** End of conventional memory (start of the VGA hole). */
    public static final long EBDA_END = 0xA0000;
    /**
     * Start of the BIOS area (0xE0000..0xFFFFF), reserved as a PC's firmware reserves it: the ACPI tables from
     * 0xE0000, the MP table from 0xF0000.
     */
    public static final long BIOS_START = 0xE0000;
    /** End of the first MiB; RAM resumes here. */
    public static final long HIGH_MEMORY_START = 0x100000;

    /**
     * One e820 range.
     *
     * @param addr guest-physical start address
     * @param size length in bytes (greater than 0)
     * @param type {@link #RAM}, {@link #RESERVED}, or another ACPI address range type
     */
    public record Entry(long addr, long size, int type) {
        /** @return the guest-physical address just past the range */
        public long end() {
            return addr + size;
        }
    }

    /** @throws IllegalArgumentException if there are too many, empty, unsorted or overlapping entries */
    public E820Map {
        entries = List.copyOf(entries);
        if (entries.size() > ZeroPage.E820_MAX_ENTRIES) {
            throw new IllegalArgumentException("e820 map has " + entries.size() + " entries, the zero page holds "
                    + ZeroPage.E820_MAX_ENTRIES);
        }
        long end = 0;
        for (Entry e : entries) {
            if (e.size() <= 0 || e.addr() < end) {
                throw new IllegalArgumentException("e820 entry " + e + " is empty, unsorted or overlaps the one before");
            }
            end = e.end();
        }
    }

    /**
     * The map Panamax gives an x86 guest:
     * <pre>
     *   0x0         .. 0x9FC00      RAM       (conventional memory)
     *   0x9FC00     .. 0xA0000      reserved  (EBDA)
     *   0xE0000     .. 0x100000     reserved  (BIOS area: ACPI tables, MP table)
     *   0x100000    .. lowRamBytes  RAM
     *   0x100000000 .. + highRamBytes RAM     (only if highRamBytes &gt; 0)
     * </pre>
     * The caller splits guest RAM: low RAM ends at most at the PCI hole (e.g. 0xC0000000), the rest is high.
     *
     * @param lowRamBytes  bytes of RAM from guest-physical 0; more than 1 MiB, at most 4 GiB
     * @param highRamBytes bytes of RAM from guest-physical 4 GiB; 0 for none
     * @return the map
     * @throws IllegalArgumentException if the sizes are out of range
     */
    public static E820Map x86(long lowRamBytes, long highRamBytes) {
        if (lowRamBytes <= HIGH_MEMORY_START || lowRamBytes > X86Layout.HIGH_RAM_START) {
            throw new IllegalArgumentException(String.format(
                    "low RAM size 0x%X must be above 1 MiB and at most 4 GiB", lowRamBytes));
        }
        if (highRamBytes < 0) {
            throw new IllegalArgumentException("high RAM size " + highRamBytes + " is negative");
        }
        var list = new java.util.ArrayList<Entry>();
        list.add(new Entry(0, EBDA_START, RAM));
        list.add(new Entry(EBDA_START, EBDA_END - EBDA_START, RESERVED));
        list.add(new Entry(BIOS_START, HIGH_MEMORY_START - BIOS_START, RESERVED));
        list.add(new Entry(HIGH_MEMORY_START, lowRamBytes - HIGH_MEMORY_START, RAM));
        if (highRamBytes > 0) {
            list.add(new Entry(X86Layout.HIGH_RAM_START, highRamBytes, RAM));
        }
        return new E820Map(list);
    }

    /**
     * A copy of this map with one more reserved range, e.g. the PCI Express ECAM window (Linux uses MMCONFIG early
     * only where e820 reserves it, {@code arch/x86/pci/mmconfig-shared.c}).
     *
     * @param addr guest-physical start
     * @param size bytes, greater than 0
     * @return the map with the range inserted in address order
     * @throws IllegalArgumentException if the range overlaps an entry (RAM, say)
     */
    public E820Map withReserved(long addr, long size) {
        var list = new java.util.ArrayList<>(entries);
        Entry added = new Entry(addr, size, RESERVED);
        int i = 0;
        while (i < list.size() && list.get(i).addr() < addr) {
            i++;
        }
        list.add(i, added);
        return new E820Map(list);
    }

    /**
     * Writes {@code e820_entries} and {@code e820_table} into a zero page.
     *
     * @param zeroPage the 4096-byte {@code struct boot_params}
     */
    public void writeTo(MemorySegment zeroPage) {
        Le.put8(zeroPage, ZeroPage.E820_ENTRIES, entries.size());
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            long at = ZeroPage.E820_TABLE + (long) i * ZeroPage.E820_ENTRY_SIZE;
            Le.put64(zeroPage, at, e.addr());
            Le.put64(zeroPage, at + 8, e.size());
            Le.put32(zeroPage, at + 16, e.type());
        }
    }

    /**
     * Reads the map back from a zero page.
     *
     * @param zeroPage the 4096-byte {@code struct boot_params}
     * @return the map in it
     * @throws IllegalArgumentException if the table there is not a valid map
     */
    public static E820Map readFrom(MemorySegment zeroPage) {
        int n = Le.u8(zeroPage, ZeroPage.E820_ENTRIES);
        var list = new java.util.ArrayList<Entry>();
        for (int i = 0; i < n; i++) {
            long at = ZeroPage.E820_TABLE + (long) i * ZeroPage.E820_ENTRY_SIZE;
            list.add(new Entry(Le.u64(zeroPage, at), Le.u64(zeroPage, at + 8), (int) Le.u32(zeroPage, at + 16)));
        }
        return new E820Map(list);
    }
}
