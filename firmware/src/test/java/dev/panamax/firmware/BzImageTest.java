package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BzImageTest {

    private static String error(ByteBuffer b) {
        return assertThrows(BootException.class, () -> FakeKernel.parse(b)).getMessage();
    }

    @Test
    void parsesTheHeaderFields() throws Exception {
        BzImage k = FakeKernel.parse(FakeKernel.valid());
        assertEquals("vmlinuz", k.name());
        assertEquals(0x020F, k.protocolVersion());
        assertEquals("2.15", k.protocolVersionString());
        assertEquals(FakeKernel.SETUP_SECTS, k.setupSects());
        assertEquals((FakeKernel.SETUP_SECTS + 1) * 512L, k.setupSize());
        assertEquals(1, k.loadflags());
        assertEquals(3, k.xloadflags());
        assertEquals(FakeKernel.INITRD_ADDR_MAX, k.initrdAddrMax());
        assertEquals(FakeKernel.CMDLINE_SIZE, k.cmdlineSize());
        assertEquals(FakeKernel.INIT_SIZE, k.initSize());
        assertEquals(0x200000, k.kernelAlignment());
        assertTrue(k.relocatable());
        assertEquals(FakeKernel.PREF_ADDRESS, k.prefAddress());
        assertEquals(0x26C, k.setupHeaderEnd());
    }

    @Test
    void setupHeaderIsTheRawBytesFrom0x1F1ToTheJumpTarget() throws Exception {
        ByteBuffer b = FakeKernel.valid();
        byte[] hdr = FakeKernel.parse(b).setupHeader();
        assertEquals(0x26C - 0x1F1, hdr.length);
        assertArrayEquals(Arrays.copyOfRange(b.array(), 0x1F1, 0x26C), hdr);
        // A shorter header (protocol 2.12 ends after handover_offset, 0x268) is copied as far as it goes.
        b.put(0x201, (byte) 0x66);
        assertEquals(0x268 - 0x1F1, FakeKernel.parse(b).setupHeader().length);
    }

    @Test
    void protectedModeKernelStartsAfterTheSetupSectors() throws Exception {
        ByteBuffer b = FakeKernel.valid();
        byte[] withTrailer = Arrays.copyOf(b.array(), b.capacity() + 100);   // e.g. a signature appended
        byte[] kernel = BzImage.parse("k", withTrailer).protectedModeKernel().toArray(ValueLayout.JAVA_BYTE);
        assertEquals(FakeKernel.KERNEL_BYTES, kernel.length);
        for (int i = 0; i < kernel.length; i++) {
            assertEquals((byte) (i * 7 + 3), kernel[i], "kernel byte " + i);
        }
    }

    @Test
    void setupSectsZeroMeansFour() throws Exception {
        // Same image with a fifth setup sector inserted before the kernel, and setup_sects 0.
        byte[] four = FakeKernel.valid().array();
        byte[] five = new byte[four.length + 512];
        System.arraycopy(four, 0, five, 0, 2048);
        System.arraycopy(four, 2048, five, 2560, four.length - 2048);
        five[0x1F1] = 0;
        BzImage k = BzImage.parse("vmlinuz", five);
        assertEquals(0, k.setupSects());
        assertEquals(5 * 512, k.setupSize());
        assertEquals((byte) 3, k.protectedModeKernel().get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void rejectsAFileWithoutHdrS() {
        ByteBuffer b = FakeKernel.valid();
        b.putInt(0x202, 0x12345678);
        assertEquals("vmlinuz: not a bzImage (no HdrS magic at 0x202)", error(b));
    }

    @Test
    void rejectsAWrongBootFlag() {
        ByteBuffer b = FakeKernel.valid();
        b.putShort(0x1FE, (short) 0);
        assertEquals("vmlinuz: not a bzImage (boot_flag at 0x1FE is 0x0000, not 0xAA55)", error(b));
    }

    @Test
    void rejectsAnOldProtocol() {
        ByteBuffer b = FakeKernel.valid();
        b.putShort(0x206, (short) 0x020B);
        assertEquals("vmlinuz: boot protocol 2.11 is too old (need 2.12 or later for 64-bit boot)", error(b));
        b.putShort(0x206, (short) 0x020C);
        assertTrue(assertDoesParse(b));
    }

    private static boolean assertDoesParse(ByteBuffer b) {
        try {
            FakeKernel.parse(b);
            return true;
        } catch (BootException e) {
            return false;
        }
    }

    @Test
    void rejectsAKernelWithout64BitEntry() {
        ByteBuffer b = FakeKernel.valid();
        b.putShort(0x236, (short) 0x2);
        assertTrue(error(b).contains("XLF_KERNEL_64"));
    }

    @Test
    void rejectsAKernelNotLoadedHigh() {
        ByteBuffer b = FakeKernel.valid();
        b.put(0x211, (byte) 0x80);
        assertTrue(error(b).contains("LOADED_HIGH"));
    }

    @Test
    void rejectsAHeaderEndOutOfRange() {
        ByteBuffer b = FakeKernel.valid();
        b.put(0x201, (byte) 0x20);        // ends at 0x222: before init_size
        assertTrue(error(b).contains("setup header ends at 0x222"));
        b.put(0x201, (byte) 0x90);        // ends at 0x292: past boot_params' room for it
        assertTrue(error(b).contains("setup header ends at 0x292"));
    }

    @Test
    void rejectsBadAlignmentAndEmptyFields() {
        ByteBuffer b = FakeKernel.valid();
        b.putInt(0x230, 0x300000);
        assertTrue(error(b).contains("kernel_alignment 0x300000"));
        b = FakeKernel.valid();
        b.putInt(0x238, 0);
        assertTrue(error(b).contains("cmdline_size"));
        b = FakeKernel.valid();
        b.putInt(0x1F4, 0);
        assertTrue(error(b).contains("syssize"));
    }

    @Test
    void rejectsTruncatedFiles() {
        byte[] whole = FakeKernel.valid().array();
        // Cut in the kernel, in the setup, in the header, and before the magic.
        for (int length : new int[] {whole.length - 1, 2048, 0x240, 0x204, 0x100, 0}) {
            byte[] cut = Arrays.copyOf(whole, length);
            String msg = assertThrows(BootException.class, () -> BzImage.parse("vmlinuz", cut),
                    "length " + length).getMessage();
            assertTrue(msg.startsWith("vmlinuz: "), msg);
            assertTrue(msg.contains("truncated") || msg.contains("not a bzImage"), msg);
        }
        String msg = assertThrows(BootException.class,
                () -> BzImage.parse("vmlinuz", Arrays.copyOf(whole, whole.length - 1))).getMessage();
        assertEquals("vmlinuz: truncated bzImage (18431 bytes, need 18432: 2048 setup + 16384 kernel)", msg);
    }

    @Test
    void readNamesTheFile(@TempDir Path dir) throws Exception {
        Path good = dir.resolve("vmlinuz-test");
        Files.write(good, FakeKernel.valid().array());
        assertEquals("vmlinuz-test", BzImage.read(good).name());

        Path junk = dir.resolve("junk.bin");
        Files.write(junk, new byte[4096]);
        assertTrue(assertThrows(BootException.class, () -> BzImage.read(junk)).getMessage().startsWith("junk.bin: not a bzImage"));

        String msg = assertThrows(BootException.class, () -> BzImage.read(dir.resolve("missing"))).getMessage();
        assertEquals("kernel " + dir.resolve("missing") + ": no such file", msg);
        assertFalse(msg.contains("\n"));
    }
}
