package dev.panamax.vfio.bindings;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Checks every binding against gcc's reading of {@code /usr/include/linux/vfio.h}: the Java side is walked
 * (each struct class's {@code layout()}, its {@code x$offset()} methods and accessors, each constant and
 * ioctl of {@link vfio_h}), a C program printing the same quantities with {@code sizeof}/{@code offsetof}
 * is written from that walk, compiled, run, and both sides compared. Needs gcc and the kernel headers
 * (linux-libc-dev), not /dev/vfio.
 */
class VfioLayoutTest {

    static final List<Class<?>> STRUCTS = List.of(
            vfio_info_cap_header.class, vfio_group_status.class, vfio_device_info.class, vfio_region_info.class,
            vfio_region_sparse_mmap_area.class, vfio_region_info_cap_sparse_mmap.class, vfio_irq_info.class,
            vfio_irq_set.class, vfio_iommu_type1_dma_map.class, vfio_iommu_type1_dma_unmap.class);

    /** What the Java side says, by key ("offsetof:kvm_run:io.port", ...). */
    static final Map<String, Long> java = new TreeMap<>();
    /** Per struct: accessor name ("io_port") to C path ("io.port"). */
    static final Map<String, Map<String, String>> accessorPaths = new LinkedHashMap<>();
    /** What gcc says, same keys. */
    static Map<String, Long> c;

    @BeforeAll
    static void askGcc() throws Exception {
        StringBuilder program = new StringBuilder("""
                #include <stddef.h>
                #include <stdio.h>
                #include <linux/vfio.h>
                #define P(k, v) printf("%s %llu\\n", k, (unsigned long long) (v))
                int main(void) {
                """);
        for (Class<?> struct : STRUCTS) {
            GroupLayout layout = (GroupLayout) struct.getMethod("layout").invoke(null);
            String name = struct.getSimpleName();
            assertEquals(name, layout.name().orElseThrow(), "layout name of " + name);
            put(program, "sizeof:" + name, "sizeof(struct " + name + ")", layout.byteSize());
            put(program, "alignof:" + name, "_Alignof(struct " + name + ")", layout.byteAlignment());
            Map<String, String> paths = new LinkedHashMap<>();
            accessorPaths.put(name, paths);
            walk(program, name, layout, 0, "", "", paths);
            // Every x$offset() method must name a member and give its C offset.
            for (Method m : struct.getMethods()) {
                if (m.getName().endsWith("$offset") && Modifier.isStatic(m.getModifiers())) {
                    String accessor = m.getName().substring(0, m.getName().length() - "$offset".length());
                    String path = paths.get(accessor);
                    if (path == null) {
                        fail(name + "." + m.getName() + "() names no member of the layout");
                    }
                    put(program, "method:" + name + ":" + accessor, "offsetof(struct " + name + ", " + path + ")",
                            (long) m.invoke(null));
                }
            }
        }
        for (Method m : vfio_h.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers()) && m.getParameterCount() == 0 && m.getName().matches("VFIO_[A-Za-z0-9_]*")) {
                Object v = m.invoke(null);
                long value = v instanceof Integer i ? Integer.toUnsignedLong(i) : (Long) v;
                put(program, "macro:" + m.getName(), m.getName(), value);
            }
        }
        program.append("  return 0;\n}\n");
        c = dev.panamax.core.bindings.BindingsGenerator.runC(program.toString());
    }

    private static void put(StringBuilder program, String key, String cExpression, long javaValue) {
        java.put(key, javaValue);
        program.append("  P(\"").append(key).append("\", ").append(cExpression).append(");\n");
    }

    /** Walks a group's members: offset and size of each named one, recursing into nested groups. */
    private static void walk(StringBuilder program, String struct, GroupLayout group, long base, String cPrefix,
                             String jPrefix, Map<String, String> paths) {
        long offset = 0;
        for (MemoryLayout member : group.memberLayouts()) {
            long memberOffset = base + (group instanceof java.lang.foreign.UnionLayout ? 0 : offset);
            offset += member.byteSize();
            if (member instanceof PaddingLayout) {
                continue;
            }
            String name = member.name().orElseThrow(() -> new AssertionError(struct + ": unnamed member " + member));
            if (name.startsWith("$anon")) {
                walk(program, struct, (GroupLayout) member, memberOffset, cPrefix, jPrefix, paths);
                continue;
            }
            String path = cPrefix + name;
            paths.put(jPrefix + name, path);
            put(program, "offsetof:" + struct + ":" + path, "offsetof(struct " + struct + ", " + path + ")", memberOffset);
            boolean flexible = member instanceof SequenceLayout seq && seq.elementCount() == 0;
            if (!flexible) {
                put(program, "sizeof:" + struct + ":" + path, "sizeof(((struct " + struct + " *)0)->" + path + ")",
                        member.byteSize());
            }
            if (member instanceof GroupLayout inner) {
                walk(program, struct, inner, memberOffset, path + ".", jPrefix + name + "_", paths);
            }
        }
    }

    @Test
    void everyStructSizeOffsetAndMacroMatchesGcc() {
        List<String> wrong = new ArrayList<>();
        for (var e : java.entrySet()) {
            Long fromC = c.get(e.getKey());
            if (!e.getValue().equals(fromC)) {
                wrong.add(e.getKey() + ": Java " + e.getValue() + ", C " + fromC);
            }
        }
        assertTrue(wrong.isEmpty(), "bindings disagree with <linux/vfio.h>:\n" + String.join("\n", wrong));
        // The walk reached the things the runtime depends on.
        assertEquals(32, c.get("sizeof:vfio_region_info"));
        assertEquals(16, c.get("sizeof:vfio_region_info_cap_sparse_mmap"));
        assertTrue(java.containsKey("offsetof:vfio_region_info_cap_sparse_mmap:header.next"));
        assertTrue(java.containsKey("offsetof:vfio_irq_set:data"));
        assertTrue(java.containsKey("macro:VFIO_DEVICE_SET_IRQS"));
        assertTrue(java.containsKey("macro:VFIO_IOMMU_MAP_DMA"));
        assertTrue(java.containsKey("macro:VFIO_TYPE1v2_IOMMU"));
        assertTrue(java.containsKey("macro:VFIO_REGION_INFO_CAP_MSIX_MAPPABLE"));
        assertTrue(java.containsKey("macro:VFIO_PCI_CONFIG_REGION_INDEX"));
    }

    /**
     * Each scalar setter writes exactly the bytes C gives its field: set all ones into a zeroed struct, and
     * the non-zero bytes must be [offsetof, offsetof + sizeof); the getter must read it back.
     */
    @Test
    void everyScalarAccessorTouchesExactlyItsField() throws Exception {
        int checked = 0;
        try (Arena arena = Arena.ofConfined()) {
            for (Class<?> struct : STRUCTS) {
                String name = struct.getSimpleName();
                long size = (long) struct.getMethod("sizeof").invoke(null);
                for (Method getter : struct.getMethods()) {
                    if (getter.getParameterCount() != 1 || getter.getParameterTypes()[0] != MemorySegment.class
                            || !getter.getReturnType().isPrimitive()) {
                        continue;
                    }
                    Class<?> type = getter.getReturnType();
                    Method setter = struct.getMethod(getter.getName(), MemorySegment.class, type);
                    String path = accessorPaths.get(name).get(getter.getName());
                    long offset = c.get("offsetof:" + name + ":" + path);
                    long width = c.get("sizeof:" + name + ":" + path);
                    MemorySegment s = arena.allocate(size, 8);
                    Object ones = switch (type.getName()) {
                        case "byte" -> (byte) -1;
                        case "short" -> (short) -1;
                        case "int" -> -1;
                        case "long" -> -1L;
                        default -> throw new AssertionError(type);
                    };
                    setter.invoke(null, s, ones);
                    for (long i = 0; i < size; i++) {
                        boolean inField = i >= offset && i < offset + width;
                        assertEquals(inField ? (byte) -1 : 0, s.get(ValueLayout.JAVA_BYTE, i),
                                name + "." + getter.getName() + " byte " + i);
                    }
                    assertEquals(ones, getter.invoke(null, s), name + "." + getter.getName());
                    checked++;
                }
            }
        }
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
