package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.firmware.acpi.AcpiMachine;
import dev.panamax.firmware.acpi.AcpiTables;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LinuxBootTest {
    private static final long MiB = 1L << 20;
    private static final long RAM = 64 * MiB;       // the fake kernel runs at 16 MiB .. 48 MiB

    private Arena arena;
    private MemorySegment ram;
    private BzImage kernel;

    @BeforeEach
    void setUp() throws Exception {
        arena = Arena.ofConfined();
        ram = arena.allocate(RAM, 4096);
        kernel = FakeKernel.parse(FakeKernel.valid());
    }

    @AfterEach
    void tearDown() {
        arena.close();
    }

    private static byte[] initrd(int size) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) (i * 13 + 1);
        }
        return b;
    }

    private long u64(long gpa) {
        return ram.get(Le.U64, gpa);
    }

    @Test
    void registerState() throws Exception {
        X86BootState s = LinuxBoot.load(ram, 0, kernel, null, "console=ttyS0", 1);
        assertEquals(0x100200, s.rip());
        assertEquals(0x7000, s.rsi());
        assertEquals(0x8FF0, s.rsp());
        assertEquals(2, s.rflags());
        assertEquals(0x80000011L, s.cr0());          // PG | ET | PE
        assertEquals(0x9000, s.cr3());
        assertEquals(0x20, s.cr4());                 // PAE
        assertEquals(0x500, s.efer());               // LMA | LME
        assertEquals(new Segment(0x10, 0, 0xFFFFFFFFL, 0xB, true, 0, false, true, true, true), s.code());
        assertEquals(new Segment(0x18, 0, 0xFFFFFFFFL, 0x3, true, 0, true, true, false, true), s.data());
        assertEquals(0x500, s.gdtBase());
        assertEquals(31, s.gdtLimit());
        assertEquals(0x520, s.idtBase());
        assertEquals(7, s.idtLimit());
    }

    @Test
    void gdtDescriptorsDecodeToTheSegments() throws Exception {
        X86BootState s = LinuxBoot.load(ram, 0, kernel, null, "", 1);
        assertEquals(0, u64(s.gdtBase()));
        assertEquals(0, u64(s.gdtBase() + 8));
        assertEquals(s.code(), Gdt.decode(u64(s.gdtBase() + s.code().selector()), s.code().selector()));
        assertEquals(s.data(), Gdt.decode(u64(s.gdtBase() + s.data().selector()), s.data().selector()));
        assertEquals(0, u64(s.idtBase()));
    }

    /** Walks the 4-level page tables (Intel SDM Vol. 3A, 4.5) from CR3 as the CPU would; -1 if not mapped. */
    private long translate(long cr3, long va) {
        long pml4e = u64(cr3 + ((va >>> 39) & 511) * 8);
        if ((pml4e & 1) == 0) {
            return -1;
        }
        long pdpte = u64((pml4e & 0xFFFFFFFFFF000L) + ((va >>> 30) & 511) * 8);
        if ((pdpte & 1) == 0) {
            return -1;
        }
        assertEquals(0, pdpte & 0x80, "no 1 GiB pages expected");
        long pde = u64((pdpte & 0xFFFFFFFFFF000L) + ((va >>> 21) & 511) * 8);
        if ((pde & 1) == 0) {
            return -1;
        }
        assertEquals(0x80, pde & 0x80, "2 MiB page expected");
        assertEquals(2, pde & 2, "writable expected");
        return (pde & 0xFFFFFFFE00000L) | (va & 0x1FFFFF);
    }

    @Test
    void pageTablesIdentityMapTheFirst4GiB() throws Exception {
        X86BootState s = LinuxBoot.load(ram, 0, kernel, null, "", 1);
        for (long va : new long[] {0, 0x7000, 0x100200, 0x1FFFFF, 0x200000, 0x3FFFFFFFL, 0x40000000L,
                0x7FFFABCDL, 0xC0000000L, 0xFEC00000L, 0xFEE00000L, 0xFFFFFFFFL}) {
            assertEquals(va, translate(s.cr3(), va), Long.toHexString(va));
        }
        for (long page = 0; page < (1L << 32); page += 2 * MiB) {
            assertEquals(page + 0x1234, translate(s.cr3(), page + 0x1234));
        }
        assertEquals(-1, translate(s.cr3(), 1L << 32));
        assertEquals(-1, translate(s.cr3(), 1L << 39));
        // The tables sit where documented.
        assertEquals(0xA003, u64(0x9000));
        assertEquals(0xB003, u64(0xA000));
        assertEquals(0xE003, u64(0xA000 + 3 * 8));
        assertEquals(0xFFE00083L, u64(0xE000 + 511 * 8));
    }

    @Test
    void zeroPageFieldsAtTheirDocumentedOffsets() throws Exception {
        byte[] rd = initrd(100_000);
        LinuxBoot.load(ram, 0, kernel, rd, "console=ttyS0 root=/dev/vda", 2);
        MemorySegment zp = ram.asSlice(0x7000, 4096);
        // Header copied from the file at 0x1F1 (bootparam.h offsets).
        assertEquals(FakeKernel.SETUP_SECTS, Le.u8(zp, 0x1F1));
        assertEquals(0xAA55, Le.u16(zp, 0x1FE));
        assertEquals(0x53726448L, Le.u32(zp, 0x202));        // "HdrS"
        assertEquals(0x020F, Le.u16(zp, 0x206));
        assertEquals(1, Le.u8(zp, 0x211));                   // loadflags
        assertEquals(0x7FF, Le.u32(zp, 0x238));              // cmdline_size
        assertEquals(FakeKernel.INIT_SIZE, Le.u32(zp, 0x260));
        assertEquals(0x1234, Le.u32(zp, 0x268));             // kernel_info_offset: the whole header came along
        // Filled in by the loader.
        assertEquals(0xFF, Le.u8(zp, 0x210));                // type_of_loader
        assertEquals(0x20000, Le.u32(zp, 0x228));            // cmd_line_ptr
        assertEquals(0, Le.u32(zp, 0x0C8));                  // ext_cmd_line_ptr
        long image = Le.u32(zp, 0x218);
        assertEquals(alignDown(RAM - rd.length), image);     // ramdisk_image
        assertEquals(rd.length, Le.u32(zp, 0x21C));          // ramdisk_size
        assertEquals(0, Le.u32(zp, 0x0C0));                  // ext_ramdisk_image
        assertEquals(0, Le.u32(zp, 0x0C4));                  // ext_ramdisk_size
        assertEquals(4, Le.u8(zp, 0x1E8));                   // e820_entries
        assertEquals(0x100000, Le.u64(zp, 0x2D0 + 3 * 20));  // e820_table[3].addr
        assertEquals(RAM - 0x100000, Le.u64(zp, 0x2D0 + 3 * 20 + 8));
        assertEquals(E820Map.x86(RAM, 0), E820Map.readFrom(zp));
        assertEquals(0, Le.u8(zp, 0x1EF));                   // sentinel
        // Everything outside the header and the loader's fields stays zero.
        byte[] file = FakeKernel.valid().array();
        for (int off = 0; off < 4096; off++) {
            boolean inHeader = off >= 0x1F1 && off < 0x26C;
            boolean loader = off == 0x210 || (off >= 0x218 && off < 0x220) || (off >= 0x228 && off < 0x22C)
                    || off == 0x1E8 || (off >= 0x2D0 && off < 0x2D0 + 4 * 20);
            if (loader) {
                continue;
            }
            int expected = inHeader ? Byte.toUnsignedInt(file[off]) : 0;
            assertEquals(expected, Le.u8(zp, off), "zero page byte 0x" + Integer.toHexString(off));
        }
    }

    @Test
    void kernelCmdlineAndInitrdAreCopied() throws Exception {
        byte[] rd = initrd(3 * 4096 + 5);
        LinuxBoot.load(ram, 0, kernel, rd, "console=ttyS0 quiet", 1);
        assertEquals(-1, ram.asSlice(0x100000, FakeKernel.KERNEL_BYTES).mismatch(kernel.protectedModeKernel()));
        byte[] cmd = "console=ttyS0 quiet".getBytes(StandardCharsets.US_ASCII);
        assertArrayEquals(cmd, ram.asSlice(0x20000, cmd.length).toArray(ValueLayout.JAVA_BYTE));
        assertEquals(0, Le.u8(ram, 0x20000 + cmd.length));
        long image = Le.u32(ram, 0x7000 + 0x218);
        assertEquals(0, image % 4096);
        assertArrayEquals(rd, ram.asSlice(image, rd.length).toArray(ValueLayout.JAVA_BYTE));
        assertEquals(MpTable.standard(1), MpTable.readFrom(ram, 0xF0000));
    }

    @Test
    void noInitrdLeavesTheRamdiskFieldsZero() throws Exception {
        LinuxBoot.load(ram, 0, kernel, new byte[0], "", 1);
        assertEquals(0, Le.u32(ram, 0x7000 + 0x218));
        assertEquals(0, Le.u32(ram, 0x7000 + 0x21C));
    }

    private static long alignDown(long v) {
        return v & ~0xFFFL;
    }

    @Test
    void initrdPlacement() throws Exception {
        // Highest 4 KiB-aligned place that ends at or below the end of low RAM...
        assertEquals(RAM - 4096, LinuxBoot.initrdAddress(kernel, RAM, 1));
        assertEquals(RAM - 4096, LinuxBoot.initrdAddress(kernel, RAM, 4096));
        assertEquals(RAM - 8192, LinuxBoot.initrdAddress(kernel, RAM, 4097));
        // ...and above what the kernel uses: pref_address 16 MiB + init_size 32 MiB.
        assertEquals(48 * MiB, LinuxBoot.kernelEnd(kernel));
        assertEquals(48 * MiB, LinuxBoot.initrdAddress(kernel, RAM, 16 * MiB));
        // ...and below initrd_addr_max + 1.
        ByteBuffer b = FakeKernel.valid();
        b.putInt(0x22C, (int) (60 * MiB - 1));
        BzImage capped = FakeKernel.parse(b);
        assertEquals(60 * MiB - 4096, LinuxBoot.initrdAddress(capped, RAM, 10));
        assertEquals(60 * MiB - 4096, LinuxBoot.initrdAddress(capped, 1L << 32, 10));
    }

    @Test
    void kernelEndFollowsTheRunAddress() throws Exception {
        // Not relocatable: runs at pref_address. Relocatable with a big alignment: at 1 MiB aligned up.
        ByteBuffer b = FakeKernel.valid();
        b.put(0x234, (byte) 0);
        assertEquals(48 * MiB, LinuxBoot.kernelEnd(FakeKernel.parse(b)));
        b = FakeKernel.valid();
        b.putInt(0x230, (int) (32 * MiB));
        assertEquals(64 * MiB, LinuxBoot.kernelEnd(FakeKernel.parse(b)));
    }

    @Test
    void initrdTooBig() {
        String msg = assertThrows(BootException.class,
                () -> LinuxBoot.load(ram, 0, kernel, initrd((int) (16 * MiB) + 1), "", 1)).getMessage();
        assertTrue(msg.startsWith("initrd (16777217 bytes) does not fit in guest memory"), msg);
        assertThrows(BootException.class, () -> LinuxBoot.initrdAddress(kernel, RAM, 1L << 33));
    }

    @Test
    void cmdlineTooLong() throws Exception {
        String max = "x".repeat(0x7FF);
        LinuxBoot.load(ram, 0, kernel, null, max, 1);
        assertEquals(0, Le.u8(ram, 0x20000 + 0x7FF));
        String msg = assertThrows(BootException.class,
                () -> LinuxBoot.load(ram, 0, kernel, null, max + "x", 1)).getMessage();
        assertEquals("kernel command line is 2048 bytes, vmlinuz takes at most 2047 (cmdline_size)", msg);
        assertThrows(BootException.class, () -> LinuxBoot.load(ram, 0, kernel, null, "a\0b", 1));
    }

    @Test
    void ramTooSmall() throws Exception {
        MemorySegment small = ram.asSlice(0, 40 * MiB);
        String msg = assertThrows(BootException.class,
                () -> LinuxBoot.load(small, 0, kernel, null, "", 1)).getMessage();
        assertEquals("vmlinuz: needs guest RAM up to 0x3000000 (init_size 0x2000000), low RAM is only 40 MiB", msg);
        assertThrows(BootException.class, () -> LinuxBoot.load(ram, 0, kernel, null, "", 0));
        assertThrows(BootException.class, () -> LinuxBoot.load(ram, 0, kernel, null, "", 255));
    }

    @Test
    void highRamIsOnlyDescribed() throws Exception {
        LinuxBoot.load(ram, 2L << 30, kernel, null, "", 4);
        E820Map map = E820Map.readFrom(ram.asSlice(0x7000, 4096));
        assertEquals(new E820Map.Entry(1L << 32, 2L << 30, E820Map.RAM), map.entries().get(4));
        assertEquals(MpTable.standard(4), MpTable.readFrom(ram, 0xF0000));
    }

    @Test
    void fileInitrdGoesStraightIntoGuestRamAndNamesTheFile(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("initrd.img");
        byte[] rd = initrd(5000);
        Files.write(f, rd);
        Initrd file = Initrd.file(f);
        assertEquals(5000, file.size());
        LinuxBoot.load(ram, 0, kernel, file, "", MpTable.standard(1));
        MemorySegment zp = ram.asSlice(0x7000, 4096);
        long address = Le.u32(zp, 0x218);
        assertEquals(5000, Le.u32(zp, 0x21C));
        assertTrue(Arrays.equals(rd, ram.asSlice(address, 5000).toArray(ValueLayout.JAVA_BYTE)));

        String msg = assertThrows(BootException.class, () -> Initrd.file(dir.resolve("nope.img"))).getMessage();
        assertEquals("initrd " + dir.resolve("nope.img") + ": no such file", msg);
        Initrd shrunk = Initrd.file(f);
        Files.write(f, new byte[100]); // the file changes between the check and the load
        msg = assertThrows(BootException.class, () -> shrunk.copyTo(ram.asSlice(0x100000, 5000))).getMessage();
        assertTrue(msg.startsWith("initrd.img: initrd ends at byte 100 of 5000"), msg);
    }

    /** Scans the BIOS area on 16-byte boundaries for "RSD PTR ", as Linux does (drivers/acpi/acpica/tbxfroot.c). */
    private long scanForRsdp() {
        byte[] sig = "RSD PTR ".getBytes(StandardCharsets.US_ASCII);
        for (long a = 0xE0000; a < 0x100000; a += 16) {
            if (Arrays.equals(sig, ram.asSlice(a, 8).toArray(ValueLayout.JAVA_BYTE))) {
                return a;
            }
        }
        return -1;
    }

    @Test
    void acpiTablesAreWrittenReservedAndPointedAt() throws Exception {
        AcpiMachine machine = AcpiMachine.pc(2, new AcpiMachine.PmRegisters(9, 0x600, 0x604, 0x608, 1), 0xE000_0000L, new AcpiMachine.Window(0xC000_0000L, 0x2000_0000L),
                new AcpiMachine.Window(0, 0), List.of(new MpTable.InterruptSource(0, 1, 1, 16)));
        AcpiTables acpi = AcpiTables.build(machine);
        ram.asSlice(0xE0000, 0x10000).fill((byte) 0x5A);     // whatever was there before goes
        LinuxBoot.load(ram, 0, kernel, (Initrd) null, "", MpTable.standard(2), acpi);
        MemorySegment zp = ram.asSlice(0x7000, 4096);
        assertEquals(0xE0000, Le.u64(zp, 0x070));             // boot_params.acpi_rsdp_addr
        assertEquals(0xE0000, scanForRsdp());
        for (AcpiTables.Table t : acpi.tables()) {
            assertArrayEquals(t.bytes(), ram.asSlice(t.address(), t.bytes().length).toArray(ValueLayout.JAVA_BYTE),
                    t.signature());
        }
        assertEquals(0, Le.u8(ram, acpi.tables().getLast().end()));
        E820Map map = E820Map.readFrom(zp);
        assertEquals(List.of(
                new E820Map.Entry(0, 0x9FC00, E820Map.RAM),
                new E820Map.Entry(0x9FC00, 0x400, E820Map.RESERVED),
                new E820Map.Entry(0xE0000, 0x20000, E820Map.RESERVED),
                new E820Map.Entry(0x100000, RAM - 0x100000, E820Map.RAM),
                new E820Map.Entry(0xE000_0000L, 256 * MiB, E820Map.RESERVED)), map.entries());
        assertEquals(MpTable.standard(2), MpTable.readFrom(ram, 0xF0000));   // still there for acpi=off
    }

    @Test
    void withoutAcpiThereIsNoRsdp() throws Exception {
        LinuxBoot.load(ram, 0, kernel, null, "", 1);
        assertEquals(0, Le.u64(ram.asSlice(0x7000, 4096), 0x070));
        assertEquals(-1, scanForRsdp());
        assertEquals(4, E820Map.readFrom(ram.asSlice(0x7000, 4096)).entries().size());
    }
}
