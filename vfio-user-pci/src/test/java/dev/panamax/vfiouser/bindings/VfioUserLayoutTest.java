package dev.panamax.vfiouser.bindings;

import dev.panamax.core.bindings.BindingsCheck;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checks the vfio-user bindings against gcc's reading of the C declarations in {@code src/test/resources/vfio-user.h}
 * (the spec's message layouts with libvfio-user's names; no distribution installs such a header), as vfio-pci's
 * {@code VfioLayoutTest} checks the {@code <linux/vfio.h>} ones: vmm-core's {@link BindingsCheck} walks the Java
 * layouts, offsets, accessors and constants, and compares each with {@code sizeof}/{@code offsetof}/the macro.
 * Also pins the sizes the spec's tables give, so that a wrong C declaration cannot slip through. Needs gcc.
 */
class VfioUserLayoutTest {

    static final List<Class<?>> STRUCTS = List.of(
            vfio_user_header.class, vfio_user_version.class, vfio_user_dma_map.class, vfio_user_dma_unmap.class,
            vfio_user_region_access.class, vfio_user_dma_region_access.class, vfio_user_dma_write_reply.class,
            vfio_user_region_io_fds_request.class, vfio_user_sub_region_ioeventfd.class,
            vfio_user_sub_region_ioregionfd.class, vfio_user_region_io_fds_reply.class, vfio_user_write_one.class,
            vfio_user_region_write_multi.class, vfio_user_region_write_multi_reply.class,
            vfio_user_device_feature.class, vfio_user_mig_data.class);

    static BindingsCheck check;

    @BeforeAll
    static void askGcc() throws Exception {
        Path includeDir = Path.of(VfioUserLayoutTest.class.getResource("/vfio-user.h").toURI()).getParent();
        check = new BindingsCheck("vfio-user.h", includeDir, vfio_user_h.class, "VFIO_(USER|DEVICE|MIGRATION)_[A-Za-z0-9_]*", STRUCTS);
    }

    @Test
    void everyStructSizeOffsetAndMacroMatchesGcc() {
        List<String> wrong = check.disagreements();
        assertTrue(wrong.isEmpty(), "bindings disagree with vfio-user.h:\n" + String.join("\n", wrong));
        assertTrue(check.java.containsKey("macro:VFIO_USER_F_DMA_REGION_WRITE"));
        assertTrue(check.java.containsKey("offsetof:vfio_user_region_write_multi:wrs"));
    }

    @Test
    void everyScalarAccessorTouchesExactlyItsField() throws Exception {
        assertTrue(check.checkScalarAccessors() > 40);
    }

    /** The sizes of the spec's tables ("Header", "VFIO_USER_DMA_MAP", ...), written out. */
    @Test
    void sizesAreTheSpecs() {
        assertEquals(16, vfio_user_header.sizeof());
        assertEquals(4, vfio_user_version.sizeof());
        assertEquals(32, vfio_user_dma_map.sizeof());
        assertEquals(24, vfio_user_dma_unmap.sizeof());
        assertEquals(16, vfio_user_region_access.sizeof());
        assertEquals(16, vfio_user_dma_region_access.sizeof());
        assertEquals(12, vfio_user_dma_write_reply.sizeof());
        assertEquals(16, vfio_user_region_io_fds_request.sizeof());
        assertEquals(40, vfio_user_sub_region_ioeventfd.sizeof());
        assertEquals(vfio_user_sub_region_ioeventfd.datamatch$offset(), vfio_user_sub_region_ioregionfd.user_data$offset());
        assertEquals(24, vfio_user_write_one.sizeof());
        assertEquals(8, vfio_user_region_write_multi.sizeof());
        assertEquals(1, vfio_user_h.VFIO_USER_VERSION());
        assertEquals(15, vfio_user_h.VFIO_USER_REGION_WRITE_MULTI());
        assertEquals(0x10, vfio_user_h.VFIO_USER_F_NO_REPLY());
        assertEquals(0x20, vfio_user_h.VFIO_USER_F_ERROR());
        // libvfio-user's numbering of the sub-region types (the spec names them without values) and QEMU's
        // REGION_WRITE_MULTI limits (hw/vfio-user/protocol.h), which the codecs once spelled out themselves.
        assertEquals(0, vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD());
        assertEquals(1, vfio_user_h.VFIO_USER_IO_FD_TYPE_IOREGIONFD());
        assertEquals(8, vfio_user_h.VFIO_USER_MULTI_DATA());
        assertEquals(200, vfio_user_h.VFIO_USER_MULTI_MAX());
        // Migration v2: the command numbers, <linux/vfio.h>'s feature numbers and enum vfio_device_mig_state.
        assertEquals(16, vfio_user_h.VFIO_USER_DEVICE_FEATURE());
        assertEquals(17, vfio_user_h.VFIO_USER_MIG_DATA_READ());
        assertEquals(18, vfio_user_h.VFIO_USER_MIG_DATA_WRITE());
        assertEquals(8, vfio_user_device_feature.sizeof());
        assertEquals(8, vfio_user_mig_data.sizeof());
        assertEquals(1, vfio_user_h.VFIO_DEVICE_FEATURE_MIGRATION());
        assertEquals(2, vfio_user_h.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE());
        assertEquals(1 << 16, vfio_user_h.VFIO_DEVICE_FEATURE_GET());
        assertEquals(1 << 17, vfio_user_h.VFIO_DEVICE_FEATURE_SET());
        assertEquals(1 << 18, vfio_user_h.VFIO_DEVICE_FEATURE_PROBE());
        assertEquals(3, vfio_user_h.VFIO_DEVICE_STATE_STOP_COPY());
        assertEquals(4, vfio_user_h.VFIO_DEVICE_STATE_RESUMING());
    }

    /** Packed, as in C: the accessors work on a byte[] at any offset. */
    @Test
    void accessorsWorkOnHeapBytesAtOddOffsets() {
        byte[] bytes = new byte[1 + 24];
        MemorySegment s = MemorySegment.ofArray(bytes).asSlice(1);
        vfio_user_write_one.offset(s, 0x0102030405060708L);
        vfio_user_write_one.data(s, 7, (byte) 9);
        assertEquals(0x0102030405060708L, vfio_user_write_one.offset(s));
        assertEquals(8, bytes[1]);
        assertEquals(9, bytes[1 + 16 + 7]);
        assertEquals(1, vfio_user_header.layout().byteAlignment());
    }
}
