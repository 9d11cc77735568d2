package dev.panamax.firmware;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A checked Linux x86 kernel image in bzImage format, as the 64-bit boot protocol loads it
 * ({@code Documentation/arch/x86/boot.rst}, "The Real-Mode Kernel Header" and "64-bit Boot Protocol";
 * fields from {@code struct setup_header} in {@code arch/x86/include/uapi/asm/bootparam.h}).
 *
 * <p>The file is: a 512-byte boot sector, {@code setup_sects} more 512-byte sectors of real-mode setup
 * (together the "setup", with the setup header at 0x1F1), then the protected-mode kernel of
 * {@code syssize} 16-byte paragraphs. A loader copies the protected-mode kernel to 0x100000 and
 * enters it at 0x100000 + {@link #ENTRY_64_OFFSET} (startup_64).
 *
 * <p>Only what a 64-bit loader needs is accepted: protocol 2.12 or later (which has xloadflags),
 * XLF_KERNEL_64, and LOADED_HIGH. Anything else is a {@link BootException} naming the file.
 */
public final class BzImage {
    /** Offset of the 64-bit entry point (startup_64) from the protected-mode kernel's load address, bytes. */
    public static final int ENTRY_64_OFFSET = 0x200;
    /** Oldest boot protocol version accepted: 2.12, the first with xloadflags. */
    public static final int MIN_PROTOCOL = 0x020C;
    /** The "HdrS" magic as a little-endian u32. */
    public static final int HDRS_MAGIC = 0x53726448;
    /** The boot_flag value. */
    public static final int BOOT_FLAG = 0xAA55;

    private final String name;
    private final MemorySegment file;
    private final long setupSize;
    private final long kernelSize;
    private final long headerEnd;

    private BzImage(String name, MemorySegment file, long setupSize, long kernelSize, long headerEnd) {
        this.name = name;
        this.file = file;
        this.setupSize = setupSize;
        this.kernelSize = kernelSize;
        this.headerEnd = headerEnd;
    }

    /**
     * Reads and checks a bzImage file.
     *
     * @param path the kernel file, e.g. /boot/vmlinuz-6.1.0-56-amd64; errors name its file name
     * @return the checked image
     * @throws BootException if the file cannot be read or is not a bzImage a 64-bit loader can boot
     */
    public static BzImage read(Path path) throws BootException {
        String name = String.valueOf(path.getFileName());
        byte[] bytes;
        if (!Files.isRegularFile(path)) {
            throw new BootException("kernel " + path + ": no such file");
        }
        try {
            bytes = Files.readAllBytes(path);
        } catch (IOException | OutOfMemoryError e) {
            throw new BootException("kernel " + path + ": cannot read it (" + e.getMessage() + ")", e);
        }
        return parse(name, bytes);
    }

    /**
     * Checks the bytes of a bzImage.
     *
     * @param name  the name to use in error messages (usually the file name)
     * @param bytes the whole file; kept, not copied, so do not change it afterwards
     * @return the checked image
     * @throws BootException naming {@code name} and the first defect found
     */
    public static BzImage parse(String name, byte[] bytes) throws BootException {
        MemorySegment f = MemorySegment.ofArray(bytes).asReadOnly();
        if (bytes.length < ZeroPage.HEADER + 4) {
            throw new BootException(name + ": not a bzImage (file is only " + bytes.length + " bytes)");
        }
        if (Le.u16(f, ZeroPage.BOOT_FLAG) != BOOT_FLAG) {
            throw new BootException(String.format("%s: not a bzImage (boot_flag at 0x1FE is 0x%04X, not 0xAA55)",
                    name, Le.u16(f, ZeroPage.BOOT_FLAG)));
        }
        if (f.get(Le.U32, ZeroPage.HEADER) != HDRS_MAGIC) {
            throw new BootException(name + ": not a bzImage (no HdrS magic at 0x202)");
        }
        if (bytes.length < ZeroPage.VERSION + 2) {
            throw new BootException(name + ": truncated bzImage (" + bytes.length + " bytes, header cut short)");
        }
        int version = Le.u16(f, ZeroPage.VERSION);
        if (version < MIN_PROTOCOL) {
            throw new BootException(String.format("%s: boot protocol %d.%02d is too old (need 2.12 or later for 64-bit boot)",
                    name, version >> 8, version & 0xFF));
        }
        // The header ends at 0x202 + the jump's rel8 (boot.rst, "The Real-Mode Kernel Header").
        long headerEnd = ZeroPage.HEADER + Le.u8(f, ZeroPage.JUMP + 1);
        if (headerEnd < ZeroPage.INIT_SIZE + 4 || headerEnd > ZeroPage.HDR_END_MAX) {
            throw new BootException(String.format("%s: setup header ends at 0x%X (from the jump at 0x200), "
                    + "expected 0x%X..0x%X for protocol %d.%02d", name, headerEnd, ZeroPage.INIT_SIZE + 4,
                    ZeroPage.HDR_END_MAX, version >> 8, version & 0xFF));
        }
        if (bytes.length < headerEnd) {
            throw new BootException(String.format("%s: truncated bzImage (%d bytes, setup header ends at 0x%X)",
                    name, bytes.length, headerEnd));
        }
        int sects = Le.u8(f, ZeroPage.SETUP_SECTS);
        long setupSize = (long) ((sects == 0 ? 4 : sects) + 1) * 512;
        long kernelSize = Le.u32(f, ZeroPage.SYSSIZE) * 16;
        if (kernelSize == 0) {
            throw new BootException(name + ": syssize at 0x1F4 is 0 (no protected-mode kernel)");
        }
        if (bytes.length < setupSize + kernelSize) {
            throw new BootException(String.format("%s: truncated bzImage (%d bytes, need %d: %d setup + %d kernel)",
                    name, bytes.length, setupSize + kernelSize, setupSize, kernelSize));
        }
        BzImage image = new BzImage(name, f, setupSize, kernelSize, headerEnd);
        if ((image.xloadflags() & ZeroPage.XLF_KERNEL_64) == 0) {
            throw new BootException(name + ": kernel has no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags)");
        }
        if ((image.loadflags() & ZeroPage.LOADED_HIGH) == 0) {
            throw new BootException(name + ": kernel is not loaded high (LOADED_HIGH not set in loadflags)");
        }
        if (image.cmdlineSize() == 0) {
            throw new BootException(name + ": cmdline_size at 0x238 is 0");
        }
        long alignment = image.kernelAlignment();
        if (alignment == 0 || Long.bitCount(alignment) != 1) {
            throw new BootException(String.format("%s: kernel_alignment 0x%X is not a power of two", name, alignment));
        }
        return image;
    }

    /** @return the name used in error messages */
    public String name() {
        return name;
    }

    /** @return the boot protocol version, major in the high byte (0x020F is 2.15) */
    public int protocolVersion() {
        return Le.u16(file, ZeroPage.VERSION);
    }

    /** @return the protocol version as text, e.g. "2.15" */
    public String protocolVersionString() {
        int v = protocolVersion();
        return (v >> 8) + "." + String.format("%02d", v & 0xFF);
    }

    /** @return setup_sects as stored (0 means 4) */
    public int setupSects() {
        return Le.u8(file, ZeroPage.SETUP_SECTS);
    }

    /** @return size of the boot sector plus real-mode setup in the file, bytes: (setup_sects or 4, + 1) * 512 */
    public long setupSize() {
        return setupSize;
    }

    /** @return loadflags (bit 0 LOADED_HIGH) */
    public int loadflags() {
        return Le.u8(file, ZeroPage.LOADFLAGS);
    }

    /** @return xloadflags (bit 0 XLF_KERNEL_64, bit 1 XLF_CAN_BE_LOADED_ABOVE_4G, ...) */
    public int xloadflags() {
        return Le.u16(file, ZeroPage.XLOADFLAGS);
    }

    /** @return initrd_addr_max: the highest guest-physical address the initrd may occupy (its last byte) */
    public long initrdAddrMax() {
        return Le.u32(file, ZeroPage.INITRD_ADDR_MAX);
    }

    /** @return cmdline_size: the longest command line the kernel takes, bytes without the NUL */
    public long cmdlineSize() {
        return Le.u32(file, ZeroPage.CMDLINE_SIZE);
    }

    /** @return init_size: bytes of memory the kernel needs from its run address while it boots */
    public long initSize() {
        return Le.u32(file, ZeroPage.INIT_SIZE);
    }

    /** @return kernel_alignment: the run-address alignment of a relocatable kernel, bytes (a power of two) */
    public long kernelAlignment() {
        return Le.u32(file, ZeroPage.KERNEL_ALIGNMENT);
    }

    /** @return whether relocatable_kernel is set */
    public boolean relocatable() {
        return Le.u8(file, ZeroPage.RELOCATABLE_KERNEL) != 0;
    }

    /** @return pref_address: the guest-physical address the kernel prefers to run (decompress) at */
    public long prefAddress() {
        return Le.u64(file, ZeroPage.PREF_ADDRESS);
    }

    /** @return the file offset where the setup header ends: 0x202 + the byte at 0x201 */
    public long setupHeaderEnd() {
        return headerEnd;
    }

    /**
     * The raw setup header, to be copied into the zero page at 0x1F1.
     *
     * @return a copy of file bytes 0x1F1 up to {@link #setupHeaderEnd()}
     */
    public byte[] setupHeader() {
        return file.asSlice(ZeroPage.HDR, headerEnd - ZeroPage.HDR).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    /**
     * The protected-mode kernel: {@code syssize * 16} bytes starting at {@link #setupSize()} in the file
     * (trailing bytes after it, e.g. a signature, are not part of it).
     *
     * @return a read-only view of those bytes
     */
    public MemorySegment protectedModeKernel() {
        return file.asSlice(setupSize, kernelSize);
    }

    @Override
    public String toString() {
        return String.format("%s: bzImage protocol %s, setup %d bytes, kernel %d bytes, init_size 0x%X",
                name, protocolVersionString(), setupSize, kernelSize, initSize());
    }
}
