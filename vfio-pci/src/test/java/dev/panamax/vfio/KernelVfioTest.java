package dev.panamax.vfio;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.MmioRegion;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The kernel VFIO pieces that run without /dev/vfio: pread/pwrite on a real file, the open errors of container
 * and group, and the DMA listener over a real address space (with a recording mapper in place of the IOMMU).
 */
class KernelVfioTest {
    @TempDir
    Path dir;

    @Test
    void preadPwriteAtOffsets() throws Exception {
        Path file = dir.resolve("f");
        Files.write(file, new byte[64]);
        int fd = Libc.open(file.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocateFrom(JAVA_BYTE, (byte) 1, (byte) 2, (byte) 3);
            assertEquals(3, VfioFiles.pwrite(fd, out, 40, "test"));
            MemorySegment in = arena.allocate(4);
            assertEquals(4, VfioFiles.pread(fd, in, 39, "test"));
            assertEquals(List.of((byte) 0, (byte) 1, (byte) 2, (byte) 3), List.of(in.get(JAVA_BYTE, 0), in.get(JAVA_BYTE, 1),
                    in.get(JAVA_BYTE, 2), in.get(JAVA_BYTE, 3)));
            assertEquals(0, VfioFiles.pread(fd, in, 64, "test"));
            LinuxException e = assertThrows(LinuxException.class, () -> VfioFiles.pread(-1, in, 0, "nothing"));
            assertTrue(e.getMessage().startsWith("pread nothing: "), e.getMessage());
        } finally {
            Libc.close(fd);
        }
        assertEquals(2, Files.readAllBytes(file)[41]);
    }

    @Test
    void containerAndGroupOpenErrorsSayWhatToDo() throws Exception {
        String m = assertThrows(IllegalStateException.class, () -> VfioContainer.open(dir.resolve("vfio"))).getMessage();
        assertTrue(m.contains("is missing: load the vfio-pci module"), m);
        m = assertThrows(IllegalStateException.class, () -> VfioGroup.open(dir, 7)).getMessage();
        assertTrue(m.contains(dir.resolve("7") + " is missing"), m);
        // A file that is not VFIO answers the first ioctl with ENOTTY.
        Files.write(dir.resolve("plain"), new byte[1]);
        assertThrows(LinuxException.class, () -> VfioContainer.open(dir.resolve("plain")));
    }

    record Call(String op, long iova, long size, long vaddr) {
    }

    @Test
    void dmaListenerMapsRamAtGuestPhysicalAddresses() {
        List<Call> calls = new ArrayList<>();
        DmaBackend recorder = new DmaBackend() {
            @Override
            public void dmaMap(long iova, RamRegion region, int flags) {
                assertEquals(DmaBackend.READ | DmaBackend.WRITE, flags);
                calls.add(new Call("map", iova, region.size(), region.host().address()));
            }

            @Override
            public void dmaUnmap(long iova, long size) {
                calls.add(new Call("unmap", iova, size, 0));
            }
        };
        try (Arena arena = Arena.ofConfined()) {
            AddressSpace space = new AddressSpace();
            MemorySegment low = arena.allocate(0x2000, 4096);
            MemorySegment high = arena.allocate(0x1000, 4096);
            RamRegion lowRam = new RamRegion("ram-low", 0, 0x2000, low, -1, 0);
            space.add(lowRam);
            space.add(new MmioRegion("mmio", 0xfee00000L, 0x1000));
            space.addListener(new DmaMemoryListener(recorder));
            RamRegion highRam = new RamRegion("ram-high", 0x100000000L, 0x1000, high, -1, 0);
            space.add(highRam);
            space.remove(lowRam);
            assertEquals(List.of(
                    new Call("map", 0, 0x2000, low.address()),
                    new Call("map", 0x100000000L, 0x1000, high.address()),
                    new Call("unmap", 0, 0x2000, 0)), calls);
        }
    }
}
