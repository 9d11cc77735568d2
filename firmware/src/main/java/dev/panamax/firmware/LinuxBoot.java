package dev.panamax.firmware;

import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.firmware.acpi.AcpiTables;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Linux x86 64-bit boot protocol ({@code Documentation/arch/x86/boot.rst}, "64-bit Boot Protocol"):
 * loads a {@link BzImage}, an optional initrd and a command line into guest memory, builds the zero page,
 * the GDT, identity-mapping page tables, the MP table and (when given) the ACPI tables, and returns the register
 * state in which the boot vCPU enters the kernel's startup_64 in long mode.
 *
 * <p>Guest-physical layout in low RAM (all below 1 MiB except the kernel and initrd):
 * <pre>
 *   0x500      GDT: null, null, 0x10 = __BOOT_CS (64-bit code), 0x18 = __BOOT_DS (data)
 *   0x520      IDT: one empty (not present) gate, limit 7
 *   0x7000     zero page (struct boot_params, 4 KiB); RSI points here
 *   0x8FF0     initial stack pointer (stack grows down towards 0x8000)
 *   0x9000     PML4;  0xA000 PDPT;  0xB000..0xEFFF four PDs: 0..4 GiB identity-mapped with 2 MiB pages
 *   0x20000    kernel command line, NUL-terminated
 *   0xE0000    ACPI tables, RSDP first (e820 reserved from here to 1 MiB; boot_params.acpi_rsdp_addr)
 *   0xF0000    MP floating pointer and configuration table (for acpi=off, noapic)
 *   0x100000   protected-mode kernel; entry (startup_64) at 0x100200
 *   top        initrd: the highest 4 KiB-aligned place below min(initrd_addr_max + 1, low RAM end)
 * </pre>
 */
public final class LinuxBoot {
    private static final Logger log = LoggerFactory.getLogger(LinuxBoot.class);

    private LinuxBoot() {
    }

    /** Guest-physical address of the GDT. */
    public static final long GDT_ADDRESS = 0x500;
    /** Guest-physical address of the IDT. */
    public static final long IDT_ADDRESS = 0x520;
    /** Guest-physical address of the zero page (struct boot_params). */
    public static final long ZERO_PAGE_ADDRESS = 0x7000;
    /** Initial RSP. */
    public static final long STACK_POINTER = 0x8FF0;
    /** Guest-physical address of the PML4 (CR3). */
    public static final long PML4_ADDRESS = 0x9000;
    /** Guest-physical address of the page-directory-pointer table. */
    public static final long PDPT_ADDRESS = 0xA000;
    /** Guest-physical address of the first of the {@link #PD_COUNT} page directories. */
    public static final long PD_ADDRESS = 0xB000;
    /** Page directories: each maps 1 GiB with 512 2-MiB pages, so 4 map 0..4 GiB. */
    public static final int PD_COUNT = 4;
    /** Guest-physical address of the command line. */
    public static final long CMDLINE_ADDRESS = 0x20000;
    /** End of the room for the command line (the EBDA starts here). */
    public static final long CMDLINE_LIMIT = E820Map.EBDA_START;
    /** Guest-physical address the protected-mode kernel is loaded at (1 MiB). */
    public static final long KERNEL_ADDRESS = 0x100000;
    /** Alignment of the initrd's address, bytes. */
    public static final long INITRD_ALIGNMENT = 0x1000;

    /** GDT selector of __BOOT_CS (GDT entry 2). */
    public static final int BOOT_CS = 0x10;
    /** GDT selector of __BOOT_DS (GDT entry 3). */
    public static final int BOOT_DS = 0x18;
    /** GDT entries written: null, null, code, data. */
    public static final int GDT_ENTRIES = 4;

    /** The 64-bit flat code segment: type 0xB (execute/read, accessed), L, G, S, present, limit 4 GiB. */
    public static final Segment CODE = new Segment(BOOT_CS, 0, 0xFFFF_FFFFL, 0xB, true, 0, false, true, true, true);
    /** The flat data segment: type 3 (read/write, accessed), D/B, G, S, present, limit 4 GiB. */
    public static final Segment DATA = new Segment(BOOT_DS, 0, 0xFFFF_FFFFL, 0x3, true, 0, true, true, false, true);

    /** CR0.PE: protected mode. */
    public static final long CR0_PE = 1L;
    /** CR0.ET: extension type (hard-wired to 1 on modern CPUs). */
    public static final long CR0_ET = 1L << 4;
    /** CR0.PG: paging. */
    public static final long CR0_PG = 1L << 31;
    /** CR4.PAE: physical address extension, needed for long mode. */
    public static final long CR4_PAE = 1L << 5;
    /** EFER.LME: long mode enable. */
    public static final long EFER_LME = 1L << 8;
    /** EFER.LMA: long mode active. */
    public static final long EFER_LMA = 1L << 10;

    /** Page-table entry bits: present, writable. */
    static final long PTE_P_RW = 0x3;
    /** Page-directory entry bit PS: this entry maps a 2 MiB page. */
    static final long PDE_PS = 0x80;

    /**
     * Loads a kernel for the 64-bit boot protocol.
     *
     * @param lowRam       guest RAM from guest-physical 0 (offset 0 = GPA 0), at most 4 GiB; its size is
     *                     the low RAM end in the e820 map
     * @param highRamBytes bytes of guest RAM at guest-physical 4 GiB (only described in e820, not written); 0 for none
     * @param kernel       the checked bzImage
     * @param initrd       the initrd bytes, or null (or empty) for none
     * @param cmdline      the kernel command line (UTF-8, no NUL), at most the kernel's cmdline_size bytes
     * @param cpus         number of vCPUs, for the MP table (1..{@value MpTable#MAX_CPUS})
     * @return the register state for the boot vCPU: RIP = startup_64, RSI = zero page, long mode on
     * @throws BootException if the command line is too long, the initrd or kernel does not fit in low RAM,
     *                       or cpus is out of range
     */
    public static X86BootState load(MemorySegment lowRam, long highRamBytes, BzImage kernel, byte[] initrd,
                                    String cmdline, int cpus) throws BootException {
        if (cpus < 1 || cpus > MpTable.MAX_CPUS) {
            throw new BootException("cpus: " + cpus + " is out of range 1.." + MpTable.MAX_CPUS);
        }
        return load(lowRam, highRamBytes, kernel, initrd == null ? null : Initrd.of(initrd), cmdline, MpTable.standard(cpus));
    }

    /**
     * {@link #load(MemorySegment, long, BzImage, byte[], String, int)} with the machine's own MP table, e.g.
     * {@link MpTable#standard} with a PCI bus and its interrupt entries added, and the initrd as an {@link Initrd}
     * (e.g. {@link Initrd#file}, read straight into guest RAM).
     *
     * @param initrd  the initrd, or null (or of size 0) for none
     * @param mpTable written at {@link MpTable#ADDRESS}; it describes the CPUs, buses and interrupt routing
     * @throws BootException as the other {@code load}, and if the initrd cannot be read whole
     */
    public static X86BootState load(MemorySegment lowRam, long highRamBytes, BzImage kernel, Initrd initrd,
                                    String cmdline, MpTable mpTable) throws BootException {
        return load(lowRam, highRamBytes, kernel, initrd, cmdline, mpTable, null);
    }

    /**
     * {@link #load(MemorySegment, long, BzImage, Initrd, String, MpTable)} with ACPI: the tables are written at
     * their addresses ({@link AcpiTables#RSDP_ADDRESS}..{@link AcpiTables#LIMIT}), {@code boot_params.acpi_rsdp_addr}
     * points at the RSDP, and the e820 map reserves the machine's ECAM window as well as the BIOS area. The MP
     * table is written too, for a kernel told {@code acpi=off}.
     *
     * @param acpi the tables ({@link AcpiTables#build}), or null for none (as the six-argument {@code load})
     * @throws BootException as the other {@code load}
     * @throws IllegalArgumentException if the ECAM window overlaps low RAM
     */
    public static X86BootState load(MemorySegment lowRam, long highRamBytes, BzImage kernel, Initrd initrd,
                                    String cmdline, MpTable mpTable, AcpiTables acpi) throws BootException {
        long ramEnd = lowRam.byteSize();
        if (ramEnd > X86Layout.HIGH_RAM_START) {
            throw new IllegalArgumentException(String.format("low RAM of 0x%X bytes reaches above 4 GiB", ramEnd));
        }
        long kernelEnd = kernelEnd(kernel);
        if (ramEnd < kernelEnd) {
            throw new BootException(String.format("%s: needs guest RAM up to 0x%X (init_size 0x%X), low RAM is only %d MiB",
                    kernel.name(), kernelEnd, kernel.initSize(), ramEnd >> 20));
        }
        byte[] cmd = cmdline.getBytes(StandardCharsets.UTF_8);
        if (cmdline.indexOf('\0') >= 0) {
            throw new BootException("kernel command line contains a NUL character");
        }
        if (cmd.length > kernel.cmdlineSize() || CMDLINE_ADDRESS + cmd.length + 1 > CMDLINE_LIMIT) {
            throw new BootException(String.format("kernel command line is %d bytes, %s takes at most %d (cmdline_size)",
                    cmd.length, kernel.name(), Math.min(kernel.cmdlineSize(), CMDLINE_LIMIT - CMDLINE_ADDRESS - 1)));
        }
        long initrdSize = initrd == null ? 0 : initrd.size();
        long initrdAddress = initrdSize == 0 ? 0 : initrdAddress(kernel, ramEnd, initrdSize);

        // Protected-mode kernel at 1 MiB.
        MemorySegment.copy(kernel.protectedModeKernel(), 0, lowRam, KERNEL_ADDRESS, kernel.protectedModeKernel().byteSize());
        // Command line.
        MemorySegment.copy(cmd, 0, lowRam, ValueLayout.JAVA_BYTE, CMDLINE_ADDRESS, cmd.length);
        Le.put8(lowRam, CMDLINE_ADDRESS + cmd.length, 0);
        // Initrd.
        if (initrdSize > 0) {
            initrd.copyTo(lowRam.asSlice(initrdAddress, initrdSize));
        }

        // Zero page: zeroed, then the kernel's setup header, then what the loader fills in (boot.rst,
        // "64-bit Boot Protocol": the loader must fill struct boot_params as in the 32-bit protocol).
        MemorySegment zp = lowRam.asSlice(ZERO_PAGE_ADDRESS, ZeroPage.SIZE);
        zp.fill((byte) 0);
        byte[] hdr = kernel.setupHeader();
        MemorySegment.copy(hdr, 0, zp, ValueLayout.JAVA_BYTE, ZeroPage.HDR, hdr.length);
        Le.put8(zp, ZeroPage.TYPE_OF_LOADER, 0xFF);
        Le.put32(zp, ZeroPage.CMD_LINE_PTR, CMDLINE_ADDRESS);
        Le.put32(zp, ZeroPage.EXT_CMD_LINE_PTR, CMDLINE_ADDRESS >>> 32);
        Le.put32(zp, ZeroPage.RAMDISK_IMAGE, initrdAddress);
        Le.put32(zp, ZeroPage.EXT_RAMDISK_IMAGE, initrdAddress >>> 32);
        Le.put32(zp, ZeroPage.RAMDISK_SIZE, initrdSize);
        Le.put32(zp, ZeroPage.EXT_RAMDISK_SIZE, initrdSize >>> 32);
        E820Map e820 = E820Map.x86(ramEnd, highRamBytes);
        long acpiBytes = 0;
        if (acpi != null) {
            acpiBytes = acpi.writeTo(lowRam);
            Le.put64(zp, ZeroPage.ACPI_RSDP_ADDR, acpi.rsdpAddress());
            var ecam = acpi.machine().ecamWindow();
            e820 = e820.withReserved(ecam.base(), ecam.size());
        }
        e820.writeTo(zp);

        writeGdt(lowRam);
        lowRam.asSlice(IDT_ADDRESS, 8).fill((byte) 0);
        writePageTables(lowRam);
        int mpBytes = mpTable.writeTo(lowRam, MpTable.ADDRESS);

        log.debug("{}: protocol {}, {} bytes at 0x{}, entry 0x{}; initrd {} bytes at 0x{}; cmdline \"{}\"; "
                        + "MP table {} bytes, {} entries; ACPI tables {} bytes; RAM {} MiB low + {} MiB high",
                kernel.name(), kernel.protocolVersionString(), kernel.protectedModeKernel().byteSize(),
                Long.toHexString(KERNEL_ADDRESS), Long.toHexString(KERNEL_ADDRESS + BzImage.ENTRY_64_OFFSET),
                initrdSize, Long.toHexString(initrdAddress), cmdline, mpBytes, mpTable.entries().size(), acpiBytes, ramEnd >> 20, highRamBytes >> 20);

        return new X86BootState(
                KERNEL_ADDRESS + BzImage.ENTRY_64_OFFSET, STACK_POINTER, ZERO_PAGE_ADDRESS, 0x2,
                CR0_PE | CR0_ET | CR0_PG, PML4_ADDRESS, CR4_PAE, EFER_LME | EFER_LMA,
                CODE, DATA,
                GDT_ADDRESS, GDT_ENTRIES * 8 - 1, IDT_ADDRESS, 7);
    }


    /**
     * The end of the memory the kernel uses while it boots, which the initrd must stay above: the
     * protected-mode kernel at 1 MiB, and the run area of init_size bytes from where startup_64 moves
     * itself to decompress (arch/x86/boot/compressed/head_64.S: the load address aligned up to
     * kernel_alignment if relocatable, but not below LOAD_PHYSICAL_ADDR = pref_address).
     *
     * @param kernel the kernel
     * @return a guest-physical address (exclusive end)
     */
    public static long kernelEnd(BzImage kernel) {
        long run = kernel.prefAddress();
        if (kernel.relocatable()) {
            long aligned = alignUp(KERNEL_ADDRESS, kernel.kernelAlignment());
            run = Math.max(aligned, run);
        }
        return Math.max(KERNEL_ADDRESS + kernel.protectedModeKernel().byteSize(), run + kernel.initSize());
    }

    /**
     * Where {@link #load} puts an initrd: the highest {@value #INITRD_ALIGNMENT}-aligned address such that the
     * initrd ends at or below min(initrd_addr_max + 1, low RAM end), provided that is at or above
     * {@link #kernelEnd(BzImage)}.
     *
     * @param kernel       the kernel
     * @param lowRamBytes  the low RAM end, bytes
     * @param initrdBytes  the initrd size, bytes (greater than 0)
     * @return the guest-physical address
     * @throws BootException "initrd (N bytes) does not fit in guest memory" if there is no such address
     */
    public static long initrdAddress(BzImage kernel, long lowRamBytes, long initrdBytes) throws BootException {
        long ceiling = Math.min(kernel.initrdAddrMax() + 1, lowRamBytes);
        long floor = kernelEnd(kernel);
        long address = alignDown(ceiling - initrdBytes, INITRD_ALIGNMENT);
        if (initrdBytes > ceiling || address < floor) {
            throw new BootException(String.format("initrd (%d bytes) does not fit in guest memory "
                            + "(%d bytes free between the kernel's end 0x%X and 0x%X)",
                    initrdBytes, Math.max(0, ceiling - floor), floor, ceiling));
        }
        return address;
    }

    /** Writes the GDT: entries 0 and 1 null, 2 (0x10) {@link #CODE}, 3 (0x18) {@link #DATA}. */
    private static void writeGdt(MemorySegment lowRam) {
        Le.put64(lowRam, GDT_ADDRESS, 0);
        Le.put64(lowRam, GDT_ADDRESS + 8, 0);
        Le.put64(lowRam, GDT_ADDRESS + BOOT_CS, Gdt.encode(CODE));
        Le.put64(lowRam, GDT_ADDRESS + BOOT_DS, Gdt.encode(DATA));
    }

    /**
     * Writes 4-level page tables identity-mapping 0..4 GiB with 2 MiB pages (Intel SDM Vol. 3A, 4.5):
     * PML4[0] -> PDPT; PDPT[i] -> PD i (i in 0..3); PD i entry j maps (i * 512 + j) * 2 MiB.
     */
    private static void writePageTables(MemorySegment lowRam) {
        lowRam.asSlice(PML4_ADDRESS, 0x1000).fill((byte) 0);
        lowRam.asSlice(PDPT_ADDRESS, 0x1000).fill((byte) 0);
        Le.put64(lowRam, PML4_ADDRESS, PDPT_ADDRESS | PTE_P_RW);
        for (int i = 0; i < PD_COUNT; i++) {
            long pd = PD_ADDRESS + i * 0x1000L;
            Le.put64(lowRam, PDPT_ADDRESS + i * 8L, pd | PTE_P_RW);
            for (int j = 0; j < 512; j++) {
                long page = ((long) i * 512 + j) << 21;
                Le.put64(lowRam, pd + j * 8L, page | PTE_P_RW | PDE_PS);
            }
        }
    }

    private static long alignUp(long value, long alignment) {
        return (value + alignment - 1) & -alignment;
    }

    private static long alignDown(long value, long alignment) {
        return value & -alignment;
    }
}
