package dev.panamax.firmware;

/**
 * Byte offsets of the fields Panamax reads or writes in the zero page, {@code struct boot_params}
 * ({@code arch/x86/include/uapi/asm/bootparam.h}), and in the setup header, {@code struct setup_header},
 * which sits inside it at {@link #HDR} = 0x1F1. The setup header has the same offsets in a bzImage
 * file (its first sector and following) as in the zero page, so these constants serve both.
 *
 * <p>Field names are those of bootparam.h; the protocol is {@code Documentation/arch/x86/boot.rst}.
 */
public final class ZeroPage {
    private ZeroPage() {
    }

    /** {@code sizeof(struct boot_params)}: the zero page is one 4 KiB page. */
    public static final int SIZE = 0x1000;

    // struct boot_params
    /** u64 acpi_rsdp_addr: guest-physical address of the ACPI RSDP (0: the kernel scans the BIOS area for it). */
    public static final int ACPI_RSDP_ADDR = 0x070;
    /** u32 ext_ramdisk_image: bits 32..63 of ramdisk_image. */
    public static final int EXT_RAMDISK_IMAGE = 0x0C0;
    /** u32 ext_ramdisk_size: bits 32..63 of ramdisk_size. */
    public static final int EXT_RAMDISK_SIZE = 0x0C4;
    /** u32 ext_cmd_line_ptr: bits 32..63 of cmd_line_ptr. */
    public static final int EXT_CMD_LINE_PTR = 0x0C8;
    /** u8 e820_entries: number of entries in {@link #E820_TABLE}. */
    public static final int E820_ENTRIES = 0x1E8;
    /** u8 sentinel: must stay 0 (a non-zero value makes the kernel clear "broken" header fields). */
    public static final int SENTINEL = 0x1EF;
    /** struct setup_header hdr. */
    public static final int HDR = 0x1F1;
    /** struct boot_e820_entry e820_table[128]: 20 bytes each (u64 addr, u64 size, u32 type). */
    public static final int E820_TABLE = 0x2D0;
    /** E820_MAX_ENTRIES_ZEROPAGE. */
    public static final int E820_MAX_ENTRIES = 128;
    /** sizeof(struct boot_e820_entry). */
    public static final int E820_ENTRY_SIZE = 20;

    // struct setup_header (offsets from the start of boot_params / of the bzImage file)
    /** u8 setup_sects: size of the real-mode setup in 512-byte sectors, not counting the boot sector (0 means 4). */
    public static final int SETUP_SECTS = 0x1F1;
    /** u32 syssize: size of the protected-mode code in 16-byte paragraphs. */
    public static final int SYSSIZE = 0x1F4;
    /** u16 boot_flag: 0xAA55. */
    public static final int BOOT_FLAG = 0x1FE;
    /** u16 jump: a short jump (0xEB, rel8); the byte at 0x201 gives the end of the header, 0x202 + rel8. */
    public static final int JUMP = 0x200;
    /** u32 header: the magic "HdrS". */
    public static final int HEADER = 0x202;
    /** u16 version: boot protocol version, major in the high byte (0x020C is 2.12). */
    public static final int VERSION = 0x206;
    /** u8 type_of_loader: 0xFF for an unregistered boot loader. */
    public static final int TYPE_OF_LOADER = 0x210;
    /** u8 loadflags: bit 0 LOADED_HIGH. */
    public static final int LOADFLAGS = 0x211;
    /** u32 code32_start: 32-bit entry (unused by the 64-bit protocol). */
    public static final int CODE32_START = 0x214;
    /** u32 ramdisk_image: guest-physical address of the initrd (low 32 bits). */
    public static final int RAMDISK_IMAGE = 0x218;
    /** u32 ramdisk_size: initrd size in bytes (low 32 bits). */
    public static final int RAMDISK_SIZE = 0x21C;
    /** u32 cmd_line_ptr: guest-physical address of the NUL-terminated command line (low 32 bits). */
    public static final int CMD_LINE_PTR = 0x228;
    /** u32 initrd_addr_max: highest address the initrd may occupy (its last byte). */
    public static final int INITRD_ADDR_MAX = 0x22C;
    /** u32 kernel_alignment: physical alignment a relocatable kernel needs, bytes. */
    public static final int KERNEL_ALIGNMENT = 0x230;
    /** u8 relocatable_kernel: non-zero if the kernel may run at any kernel_alignment-aligned address. */
    public static final int RELOCATABLE_KERNEL = 0x234;
    /** u16 xloadflags: bit 0 XLF_KERNEL_64 (has the 64-bit entry at load address + 0x200). */
    public static final int XLOADFLAGS = 0x236;
    /** u32 cmdline_size: maximum command line length in bytes, without the terminating NUL. */
    public static final int CMDLINE_SIZE = 0x238;
    /** u64 pref_address: preferred load address (where a relocatable kernel decompresses by default). */
    public static final int PREF_ADDRESS = 0x258;
    /** u32 init_size: bytes of linear memory the kernel needs from its run address during boot. */
    public static final int INIT_SIZE = 0x260;
    /**
     * The furthest end of the setup header that fits in boot_params before edd_mbr_sig_buffer (0x290);
     * today's header (2.15) ends at 0x26C.
     */
    public static final int HDR_END_MAX = 0x290;

    /** loadflags bit 0: the protected-mode code is loaded at 0x100000. */
    public static final int LOADED_HIGH = 1;
    /** xloadflags bit 0: the kernel has the legacy 64-bit entry point at 0x200. */
    public static final int XLF_KERNEL_64 = 1;
    /** xloadflags bit 1: kernel, boot_params, cmdline and ramdisk may be above 4 GiB. */
    public static final int XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;
}
