package dev.panamax.firmware;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Builds synthetic bzImage files with a protocol 2.15 setup header laid out as in bootparam.h
 * (offsets written here as literals, independently of {@link ZeroPage}).
 */
final class FakeKernel {
    private FakeKernel() {
    }

    static final int SETUP_SECTS = 3;
    static final int KERNEL_BYTES = 0x4000;
    static final long INIT_SIZE = 0x2000000;         // 32 MiB
    static final long PREF_ADDRESS = 0x1000000;      // 16 MiB (LOAD_PHYSICAL_ADDR)
    static final long INITRD_ADDR_MAX = 0x7FFFFFFF;
    static final int CMDLINE_SIZE = 0x7FF;

    /** A valid image: 4 sectors of setup, KERNEL_BYTES of kernel whose byte i is (i * 7 + 3). */
    static ByteBuffer valid() {
        int setup = (SETUP_SECTS + 1) * 512;
        ByteBuffer b = ByteBuffer.allocate(setup + KERNEL_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(0x1F1, (byte) SETUP_SECTS);
        b.putInt(0x1F4, KERNEL_BYTES / 16);               // syssize
        b.putShort(0x1FA, (short) 0xFFFF);                // vid_mode
        b.putShort(0x1FE, (short) 0xAA55);                // boot_flag
        b.put(0x200, (byte) 0xEB).put(0x201, (byte) 0x6A);  // jump: header ends at 0x26C
        b.putInt(0x202, 0x53726448);                      // "HdrS"
        b.putShort(0x206, (short) 0x020F);                // version 2.15
        b.put(0x211, (byte) 0x01);                        // loadflags: LOADED_HIGH
        b.putInt(0x214, 0x100000);                        // code32_start
        b.putInt(0x22C, (int) INITRD_ADDR_MAX);
        b.putInt(0x230, 0x200000);                        // kernel_alignment
        b.put(0x234, (byte) 1);                           // relocatable_kernel
        b.put(0x235, (byte) 21);                          // min_alignment
        b.putShort(0x236, (short) 0x3);                   // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
        b.putInt(0x238, CMDLINE_SIZE);
        b.putLong(0x258, PREF_ADDRESS);
        b.putInt(0x260, (int) INIT_SIZE);
        b.putInt(0x264, 0x190);                           // handover_offset
        b.putInt(0x268, 0x1234);                          // kernel_info_offset
        for (int i = 0; i < KERNEL_BYTES; i++) {
            b.put(setup + i, (byte) (i * 7 + 3));
        }
        return b;
    }

    static BzImage parse(ByteBuffer b) throws BootException {
        return BzImage.parse("vmlinuz", b.array());
    }
}
