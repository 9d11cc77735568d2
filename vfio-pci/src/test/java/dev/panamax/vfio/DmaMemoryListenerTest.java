package dev.panamax.vfio;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.LinuxException;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Two IOMMU backends fed from one address space; one refuses a region: neither keeps it. */
class DmaMemoryListenerTest {
    /** Records maps and unmaps; refuses to map at {@code refuseIova} as VFIO_IOMMU_MAP_DMA would (EEXIST). */
    record Backend(String name, List<String> log, long refuseIova) implements DmaBackend {
        @Override
        public void dmaMap(long iova, RamRegion region, int flags) {
            if (iova == refuseIova) {
                throw new LinuxException("VFIO_IOMMU_MAP_DMA iova 0x" + Long.toHexString(iova), Errno.EEXIST);
            }
            log.add(name + " map 0x" + Long.toHexString(iova) + "+0x" + Long.toHexString(region.size()) + " flags " + flags);
        }

        @Override
        public void dmaUnmap(long iova, long size) {
            log.add(name + " unmap 0x" + Long.toHexString(iova) + "+0x" + Long.toHexString(size));
        }
    }

    @Test
    void aRegionOneBackendRefusesIsUnmappedFromTheOthers() {
        List<String> log = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            AddressSpace space = new AddressSpace();
            space.addListener(new DmaMemoryListener(new Backend("kernel", log, -1)));
            space.addListener(new DmaMemoryListener(new Backend("vfio-user", log, 0x200000)));
            space.add(new RamRegion("low", 0, 0x1000, arena.allocate(0x1000, 4096), -1, 0));
            RamRegion refused = new RamRegion("high", 0x200000, 0x1000, arena.allocate(0x1000, 4096), -1, 0);
            LinuxException e = assertThrows(LinuxException.class, () -> space.add(refused));
            assertEquals(Errno.EEXIST, e.errno());
            assertEquals(List.of("kernel map 0x0+0x1000 flags 3", "vfio-user map 0x0+0x1000 flags 3",
                    "kernel map 0x200000+0x1000 flags 3", "kernel unmap 0x200000+0x1000"), log);
            assertEquals(1, space.ramRegions().size());
            assertNull(space.find(0x200000));
        }
    }
}
