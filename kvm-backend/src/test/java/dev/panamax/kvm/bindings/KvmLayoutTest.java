package dev.panamax.kvm.bindings;

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
 * Checks every binding against gcc's reading of {@code /usr/include/linux/kvm.h}: the Java side is walked
 * (each struct class's {@code layout()}, its {@code x$offset()} methods and accessors, each constant and
 * ioctl of {@link kvm_h}), a C program printing the same quantities with {@code sizeof}/{@code offsetof}
 * is written from that walk, compiled, run, and both sides compared. Needs gcc and the kernel headers
 * (linux-libc-dev), not /dev/kvm.
 */
class KvmLayoutTest {

    static final List<Class<?>> STRUCTS = List.of(
            kvm_run.class, kvm_regs.class, kvm_sregs.class, kvm_segment.class, kvm_dtable.class, kvm_fpu.class,
            kvm_cpuid2.class, kvm_cpuid_entry2.class, kvm_msrs.class, kvm_msr_entry.class, kvm_msr_list.class,
            kvm_userspace_memory_region.class, kvm_pit_config.class, kvm_irq_level.class, kvm_lapic_state.class,
            kvm_signal_mask.class, kvm_mp_state.class, kvm_irqfd.class, kvm_irq_routing.class,
            kvm_irq_routing_entry.class, kvm_irq_routing_msi.class, kvm_irq_routing_irqchip.class);

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
                #include <linux/kvm.h>
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
        for (Method m : kvm_h.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers()) && m.getParameterCount() == 0 && m.getName().matches("KVM[A-Z0-9_]*")) {
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
        assertTrue(wrong.isEmpty(), "bindings disagree with <linux/kvm.h>:\n" + String.join("\n", wrong));
        // The walk reached the things the runtime depends on.
        assertEquals(2352, c.get("sizeof:kvm_run"));
        assertTrue(java.containsKey("method:kvm_run:io_data_offset"));
        assertTrue(java.containsKey("method:kvm_run:mmio_is_write"));
        assertTrue(java.containsKey("offsetof:kvm_sregs:cs.base"));
        assertTrue(java.containsKey("offsetof:kvm_irq_routing_entry:u.msi.devid"));
        assertTrue(java.containsKey("macro:KVM_RUN"));
        assertTrue(java.containsKey("macro:KVM_SET_GSI_ROUTING"));
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
        assertTrue(checked > 100, "only " + checked + " accessors checked");
    }

    @Test
    void ioctlNumbersAreTheKnownValues() {
        // A few spelled out, from strace of a running VMM, so the encoding itself is pinned as well.
        assertEquals(0xae80L, kvm_h.KVM_RUN());
        assertEquals(0xae01L, kvm_h.KVM_CREATE_VM());
        assertEquals(0x4020ae46L, kvm_h.KVM_SET_USER_MEMORY_REGION());
        assertEquals(0x8090ae81L, kvm_h.KVM_GET_REGS());
        assertEquals(0xc008ae05L, kvm_h.KVM_GET_SUPPORTED_CPUID());
    }

    @Test
    void flexibleArrayAccessorsStepByElement() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cpuid = arena.allocate(kvm_cpuid2.sizeof() + 3 * kvm_cpuid_entry2.sizeof(), 8);
            kvm_cpuid_entry2.function(kvm_cpuid2.entries(cpuid, 2), 0xb);
            assertEquals(0xb, cpuid.get(ValueLayout.JAVA_INT, 8 + 2 * 40));
            MemorySegment list = arena.allocate(kvm_msr_list.sizeof() + 4 * 4, 8);
            kvm_msr_list.indices(list, 3, 0x174);
            assertEquals(0x174, list.get(ValueLayout.JAVA_INT, 4 + 3 * 4));
        }
    }
}
