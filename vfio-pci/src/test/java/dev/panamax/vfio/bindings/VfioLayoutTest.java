package dev.panamax.vfio.bindings;

import dev.panamax.core.bindings.BindingsCheck;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checks every binding against gcc's reading of {@code /usr/include/linux/vfio.h}: the Java side is walked
 * (each struct class's {@code layout()}, its {@code x$offset()} methods and accessors, each constant and
 * ioctl of {@link vfio_h}), a C program printing the same quantities with {@code sizeof}/{@code offsetof}
 * is written from that walk, compiled, run, and both sides compared (vmm-core's {@link BindingsCheck}). Needs gcc and the kernel headers
 * (linux-libc-dev), not /dev/vfio.
 */
class VfioLayoutTest {

    static final List<Class<?>> STRUCTS = List.of(
            vfio_info_cap_header.class, vfio_group_status.class, vfio_device_info.class, vfio_region_info.class,
            vfio_region_sparse_mmap_area.class, vfio_region_info_cap_sparse_mmap.class, vfio_region_info_cap_type.class,
            vfio_irq_info.class,
            vfio_irq_set.class, vfio_iommu_type1_dma_map.class, vfio_iommu_type1_dma_unmap.class,
            vfio_device_feature.class, vfio_device_feature_migration.class, vfio_device_feature_mig_state.class);

    static BindingsCheck check;

    @BeforeAll
    static void askGcc() throws Exception {
        check = new BindingsCheck("linux/vfio.h", vfio_h.class, "VFIO_[A-Za-z0-9_]*", STRUCTS);
    }

    @Test
    void everyStructSizeOffsetAndMacroMatchesGcc() {
        List<String> wrong = check.disagreements();
        assertTrue(wrong.isEmpty(), "bindings disagree with <linux/vfio.h>:\n" + String.join("\n", wrong));
        // The walk reached the things the runtime depends on.
        assertEquals(32, check.c.get("sizeof:vfio_region_info"));
        assertEquals(16, check.c.get("sizeof:vfio_region_info_cap_sparse_mmap"));
        assertTrue(check.java.containsKey("offsetof:vfio_region_info_cap_sparse_mmap:header.next"));
        assertTrue(check.java.containsKey("offsetof:vfio_irq_set:data"));
        assertTrue(check.java.containsKey("macro:VFIO_DEVICE_SET_IRQS"));
        assertTrue(check.java.containsKey("macro:VFIO_IOMMU_MAP_DMA"));
        assertTrue(check.java.containsKey("macro:VFIO_TYPE1v2_IOMMU"));
        assertTrue(check.java.containsKey("macro:VFIO_REGION_INFO_CAP_MSIX_MAPPABLE"));
        assertTrue(check.java.containsKey("macro:VFIO_PCI_CONFIG_REGION_INDEX"));
        assertTrue(check.java.containsKey("offsetof:vfio_region_info_cap_type:subtype"));
        assertTrue(check.java.containsKey("macro:VFIO_IRQ_SET_ACTION_TYPE_MASK"));
        // Migration v2: the feature header with its flexible data, the two payloads, the enum's values.
        assertEquals(8, check.c.get("sizeof:vfio_device_feature"));
        assertEquals(8, check.c.get("sizeof:vfio_device_feature_migration"));
        assertEquals(8, check.c.get("sizeof:vfio_device_feature_mig_state"));
        assertTrue(check.java.containsKey("offsetof:vfio_device_feature:data"));
        assertTrue(check.java.containsKey("offsetof:vfio_device_feature_mig_state:data_fd"));
        assertTrue(check.java.containsKey("macro:VFIO_DEVICE_FEATURE"));
        assertTrue(check.java.containsKey("macro:VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE"));
        assertTrue(check.java.containsKey("macro:VFIO_DEVICE_STATE_RUNNING_P2P"));
    }

    /**
     * The accessors are unaligned ({@code access unaligned} in vfio-bindings.spec): vfio-user carries these structs
     * in byte arrays at any offset, while allocate() keeps C's alignment for the ioctls.
     */
    @Test
    void accessorsWorkOnHeapBytesAtAnyOffsetAndAllocateKeepsCAlignment() {
        byte[] bytes = new byte[1 + 32 + 16 + 16];
        MemorySegment info = MemorySegment.ofArray(bytes).asSlice(1);
        vfio_region_info.size(info, 0x1122334455667788L);
        assertEquals(0x1122334455667788L, vfio_region_info.size(info));
        assertEquals((byte) 0x88, bytes[1 + 16]);
        MemorySegment cap = info.asSlice(vfio_region_info.sizeof());
        vfio_region_sparse_mmap_area.size(vfio_region_info_cap_sparse_mmap.areas(cap, 0), 7);
        assertEquals(7, vfio_region_sparse_mmap_area.size(vfio_region_info_cap_sparse_mmap.areas(cap, 0)));
        assertEquals(8, vfio_region_info.layout().byteAlignment());
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(0, vfio_region_info.allocate(arena).address() % 8);
        }
    }

    /**
     * Each scalar setter writes exactly the bytes C gives its field ({@link BindingsCheck#checkScalarAccessors}).
     */
    @Test
    void everyScalarAccessorTouchesExactlyItsField() throws Exception {
        int checked = check.checkScalarAccessors();
        assertTrue(checked > 30, "only " + checked + " accessors checked");
    }

    @Test
    void ioctlNumbersAreTheKnownValues() {
        // Spelled out, so the _IO encoding itself is pinned: type ';' (0x3b) in bits 8-15, 100 + n in bits 0-7.
        assertEquals(0x3b64L, vfio_h.VFIO_GET_API_VERSION());
        assertEquals(0x3b65L, vfio_h.VFIO_CHECK_EXTENSION());
        assertEquals(0x3b66L, vfio_h.VFIO_SET_IOMMU());
        assertEquals(0x3b67L, vfio_h.VFIO_GROUP_GET_STATUS());
        assertEquals(0x3b68L, vfio_h.VFIO_GROUP_SET_CONTAINER());
        assertEquals(0x3b6aL, vfio_h.VFIO_GROUP_GET_DEVICE_FD());
        assertEquals(0x3b6bL, vfio_h.VFIO_DEVICE_GET_INFO());
        assertEquals(0x3b6cL, vfio_h.VFIO_DEVICE_GET_REGION_INFO());
        assertEquals(0x3b6dL, vfio_h.VFIO_DEVICE_GET_IRQ_INFO());
        assertEquals(0x3b6eL, vfio_h.VFIO_DEVICE_SET_IRQS());
        assertEquals(0x3b6fL, vfio_h.VFIO_DEVICE_RESET());
        assertEquals(0x3b71L, vfio_h.VFIO_IOMMU_MAP_DMA());
        assertEquals(0x3b72L, vfio_h.VFIO_IOMMU_UNMAP_DMA());
        assertEquals(0x3b75L, vfio_h.VFIO_DEVICE_FEATURE());
    }

    @Test
    void flexibleArrayAccessorsStepByElement() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment sparse = arena.allocate(vfio_region_info_cap_sparse_mmap.sizeof() + 3 * vfio_region_sparse_mmap_area.sizeof(), 8);
            vfio_region_sparse_mmap_area.size(vfio_region_info_cap_sparse_mmap.areas(sparse, 2), 0x2000);
            assertEquals(0x2000L, sparse.get(ValueLayout.JAVA_LONG, 16 + 2 * 16 + 8));
            MemorySegment set = arena.allocate(vfio_irq_set.sizeof() + 4, 8);
            vfio_irq_set.data(set, 3, (byte) 1);
            assertEquals(1, set.get(ValueLayout.JAVA_BYTE, 20 + 3));
        }
    }
}
