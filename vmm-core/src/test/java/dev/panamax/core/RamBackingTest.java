package dev.panamax.core;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamBacking;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.AnonymousMemory;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.HostMemory;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.core.sys.MemFd;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Each guest RAM backing allocates, holds what is written, has an fd or not, and carries the advice QEMU gives RAM:
 * checked in {@code /proc/self/smaps} ({@code proc(5)}: VmFlags {@code hg} for MADV_HUGEPAGE, {@code sh} for shared, {@code ht} for hugetlb).
 */
class RamBackingTest {
    private static final long MIB = 1L << 20;

    @Test
    void anonymousMemoryHasNoFdAndIsAdvisedHugePagesAndDontFork() throws IOException {
        try (AnonymousMemory m = new AnonymousMemory("test-anon", 4 * MIB)) {
            assertEquals(-1, m.fd());
            assertEquals(4 * MIB, m.mapping().byteSize());
            writeAndReadBack(m);
            Map<String, String> smaps = smaps(m.mapping());
            List<String> flags = List.of(smaps.get("VmFlags").split(" "));
            assertTrue(flags.contains("hg"), "MADV_HUGEPAGE: " + flags);
            assertFalse(flags.contains("sh"), "private: " + flags);
            assertTrue(flags.contains("nr"), "MAP_NORESERVE: " + flags);
        }
    }

    @Test
    void memfdIsSealedSharedAndAdvised() throws IOException {
        try (MemFd m = (MemFd) RamBacking.MEMFD.allocate("test-memfd", 4 * MIB)) {
            assertTrue(m.fd() >= 0);
            assertEquals(MemFd.SEALS, Libc.fcntl(m.fd(), Libc.F_GET_SEALS, 0, "F_GET_SEALS"));
            assertEquals(4 * MIB, Libc.fstatSize(m.fd()));
            writeAndReadBack(m);
            List<String> flags = List.of(smaps(m.mapping()).get("VmFlags").split(" "));
            assertTrue(flags.contains("sh"), "MAP_SHARED: " + flags);
            assertTrue(flags.contains("hg"), "MADV_HUGEPAGE: " + flags);
        }
    }

    /**
     * With enough free 2 MiB huge pages the memfd is hugetlb ({@code ht}) and sealed; without (the usual CI host:
     * {@code vm.nr_hugepages} 0) the error, at allocation and not as a SIGBUS at first touch, says how many are
     * needed and how many are free.
     */
    @Test
    void hugetlbfsGivesHugePagesOrSaysThereAreNone() throws IOException {
        long needed = 2;
        if (freeHugePages() >= needed) {
            try (HostMemory m = RamBacking.HUGETLBFS.allocate("test-hugetlb", needed * MemFd.HUGE_PAGE_BYTES)) {
                assertTrue(m.fd() >= 0);
                assertEquals(MemFd.SEALS, Libc.fcntl(m.fd(), Libc.F_GET_SEALS, 0, "F_GET_SEALS"));
                writeAndReadBack(m);
                Map<String, String> smaps = smaps(m.mapping());
                assertTrue(List.of(smaps.get("VmFlags").split(" ")).contains("ht"), smaps.get("VmFlags"));
                assertEquals("2048 kB", smaps.get("KernelPageSize"));
            }
        } else {
            LinuxException e = assertThrows(LinuxException.class,
                    () -> RamBacking.HUGETLBFS.allocate("test-hugetlb", needed * MemFd.HUGE_PAGE_BYTES));
            assertEquals(Errno.ENOMEM, e.errno());
            assertTrue(e.getMessage().startsWith("mmap test-hugetlb: 2 huge pages of 2 MiB needed, the host has "),
                    e.getMessage());
            assertTrue(e.getMessage().contains("/proc/meminfo HugePages_Free "), e.getMessage());
            assertTrue(e.getMessage().contains("vm.nr_hugepages"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), "one line");
        }
    }

    @Test
    void hugetlbfsRefusesASizeThatIsNotWholeHugePages() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> MemFd.hugetlb("test-hugetlb", 3 * MIB));
        assertEquals("hugetlbfs memory must be a positive multiple of 2 MiB, not 3145728 bytes", e.getMessage());
    }

    /** One memory model: the listeners get the same regions from every backing, with the fd the only difference. */
    @Test
    void everyBackingGivesTheSameRegions() {
        List<String> seen = null;
        for (RamBacking b : new RamBacking[]{RamBacking.ANONYMOUS, RamBacking.MEMFD}) {
            AddressSpace space = new AddressSpace();
            List<RamRegion> added = new ArrayList<>();
            space.addListener(new MemoryListener() {
                @Override
                public void regionAdded(MemoryRegion r) {
                    added.add((RamRegion) r);
                }

                @Override
                public void regionRemoved(MemoryRegion r) {
                }
            });
            try (GuestRam ram = new GuestRam(space, 64 * MIB, b)) {
                assertEquals(b, ram.backing());
                List<String> shape = new ArrayList<>();
                for (RamRegion r : added) {
                    shape.add(r.name() + "@" + r.guestPhysicalAddress() + "+" + r.size() + " offset " + r.fdOffset());
                    assertEquals(ram.memory().fd(), r.fd());
                }
                if (seen != null) {
                    assertEquals(seen, shape);
                }
                seen = shape;
                if (b == RamBacking.ANONYMOUS) {
                    assertEquals(-1, ram.low().fd());
                    IllegalStateException e = assertThrows(IllegalStateException.class, ram::memfd);
                    assertEquals("guest RAM is ANONYMOUS, not in a memfd", e.getMessage());
                } else {
                    assertEquals(ram.memfd().fd(), ram.low().fd());
                }
                ram.low().host().set(JAVA_LONG, 8, 0x1234_5678L);
                assertEquals(0x1234_5678L, ram.memory().mapping().get(JAVA_LONG, 8));
            }
        }
    }

    private static void writeAndReadBack(HostMemory m) {
        MemorySegment s = m.mapping();
        for (long at = 0; at < s.byteSize(); at += 4096) {
            s.set(JAVA_LONG, at, at ^ 0x5A5A_5A5AL);
        }
        for (long at = 0; at < s.byteSize(); at += 4096) {
            assertEquals(at ^ 0x5A5A_5A5AL, s.get(JAVA_LONG, at));
        }
    }

    /** @return the fields of the {@code /proc/self/smaps} entry for the mapping that starts at {@code m} */
    static Map<String, String> smaps(MemorySegment m) throws IOException {
        String start = Long.toHexString(m.address());
        Map<String, String> fields = null;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            int colon = line.indexOf(':');
            boolean header = colon < 0 || line.substring(0, colon).contains("-") || line.contains(" ") && line.indexOf(' ') < colon;
            if (header) {
                if (fields != null) {
                    return fields;
                }
                String range = line.substring(0, line.indexOf(' '));
                if (range.substring(0, range.indexOf('-')).replaceFirst("^0+(?=.)", "").equals(start)) {
                    fields = new TreeMap<>();
                }
            } else if (fields != null) {
                fields.put(line.substring(0, colon), line.substring(colon + 1).trim());
            }
        }
        if (fields == null) {
            throw new AssertionError("no mapping at 0x" + start + " in /proc/self/smaps");
        }
        return fields;
    }

    private static long freeHugePages() throws IOException {
        long free = 0, rsvd = 0;
        for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
            String[] f = line.split("\\s+");
            if (f[0].equals("HugePages_Free:")) {
                free = Long.parseLong(f[1]);
            } else if (f[0].equals("HugePages_Rsvd:")) {
                rsvd = Long.parseLong(f[1]);
            }
        }
        return free - rsvd;
    }
}
