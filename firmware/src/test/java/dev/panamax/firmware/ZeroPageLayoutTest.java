package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checks every {@link ZeroPage} offset against the kernel's own header, {@code <asm/bootparam.h>}, by
 * compiling a small C program with gcc. Skipped, with the reason, where gcc or the header is missing.
 */
class ZeroPageLayoutTest {

    @Test
    void offsetsMatchAsmBootparamH(@TempDir Path dir) throws Exception {
        assertTrue(Files.exists(Path.of("/usr/include/x86_64-linux-gnu/asm/bootparam.h"))
                        || Files.exists(Path.of("/usr/include/asm/bootparam.h")),
                "asm/bootparam.h not installed (linux-libc-dev)");
        Map<String, Long> expected = new LinkedHashMap<>();
        expected.put("sizeof(struct boot_params)", (long) ZeroPage.SIZE);
        expected.put("offsetof(struct boot_params, acpi_rsdp_addr)", (long) ZeroPage.ACPI_RSDP_ADDR);
        expected.put("offsetof(struct boot_params, ext_ramdisk_image)", (long) ZeroPage.EXT_RAMDISK_IMAGE);
        expected.put("offsetof(struct boot_params, ext_ramdisk_size)", (long) ZeroPage.EXT_RAMDISK_SIZE);
        expected.put("offsetof(struct boot_params, ext_cmd_line_ptr)", (long) ZeroPage.EXT_CMD_LINE_PTR);
        expected.put("offsetof(struct boot_params, e820_entries)", (long) ZeroPage.E820_ENTRIES);
        expected.put("offsetof(struct boot_params, sentinel)", (long) ZeroPage.SENTINEL);
        expected.put("offsetof(struct boot_params, hdr)", (long) ZeroPage.HDR);
        expected.put("offsetof(struct boot_params, e820_table)", (long) ZeroPage.E820_TABLE);
        expected.put("offsetof(struct boot_params, edd_mbr_sig_buffer)", (long) ZeroPage.HDR_END_MAX);
        expected.put("E820_MAX_ENTRIES_ZEROPAGE", (long) ZeroPage.E820_MAX_ENTRIES);
        expected.put("sizeof(struct boot_e820_entry)", (long) ZeroPage.E820_ENTRY_SIZE);
        String[][] hdr = {
            {"setup_sects", "SETUP_SECTS"}, {"syssize", "SYSSIZE"}, {"boot_flag", "BOOT_FLAG"}, {"jump", "JUMP"},
            {"header", "HEADER"}, {"version", "VERSION"}, {"type_of_loader", "TYPE_OF_LOADER"},
            {"loadflags", "LOADFLAGS"}, {"code32_start", "CODE32_START"}, {"ramdisk_image", "RAMDISK_IMAGE"},
            {"ramdisk_size", "RAMDISK_SIZE"}, {"cmd_line_ptr", "CMD_LINE_PTR"}, {"initrd_addr_max", "INITRD_ADDR_MAX"},
            {"kernel_alignment", "KERNEL_ALIGNMENT"}, {"relocatable_kernel", "RELOCATABLE_KERNEL"},
            {"xloadflags", "XLOADFLAGS"}, {"cmdline_size", "CMDLINE_SIZE"}, {"pref_address", "PREF_ADDRESS"},
            {"init_size", "INIT_SIZE"},
        };
        for (String[] f : hdr) {
            expected.put("0x1F1 + offsetof(struct setup_header, " + f[0] + ")",
                    (long) ZeroPage.class.getField(f[1]).getInt(null));
        }
        expected.put("LOADED_HIGH", (long) ZeroPage.LOADED_HIGH);
        expected.put("XLF_KERNEL_64", (long) ZeroPage.XLF_KERNEL_64);
        expected.put("XLF_CAN_BE_LOADED_ABOVE_4G", (long) ZeroPage.XLF_CAN_BE_LOADED_ABOVE_4G);

        StringBuilder c = new StringBuilder("#include <stdio.h>\n#include <stddef.h>\n#include <asm/bootparam.h>\n"
                + "int main(void) {\n");
        for (String e : expected.keySet()) {
            c.append("  printf(\"%lu\\n\", (unsigned long)(").append(e).append("));\n");
        }
        c.append("  return 0;\n}\n");
        Path src = dir.resolve("layout.c");
        Path exe = dir.resolve("layout");
        Files.writeString(src, c);
        Process gcc;
        try {
            gcc = new ProcessBuilder("gcc", "-o", exe.toString(), src.toString()).redirectErrorStream(true).start();
        } catch (java.io.IOException e) {
            throw new AssertionError("gcc is needed to check the layout against <asm/bootparam.h> (apt-get install gcc)", e);
        }
        String gccOut = new String(gcc.getInputStream().readAllBytes());
        assertTrue(gcc.waitFor(60, TimeUnit.SECONDS), "gcc timed out");
        assertEquals(0, gcc.exitValue(), "gcc failed: " + gccOut);
        Process run = new ProcessBuilder(exe.toString()).start();
        List<String> lines = new String(run.getInputStream().readAllBytes()).lines().toList();
        assertEquals(0, run.waitFor());
        int i = 0;
        for (var e : expected.entrySet()) {
            assertEquals(Long.parseLong(lines.get(i++)), e.getValue(), e.getKey());
        }
    }
}
