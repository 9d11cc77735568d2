package dev.panamax.core.bindings;

import java.lang.foreign.Arena;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.PaddingLayout;
import java.lang.foreign.SequenceLayout;
import java.lang.foreign.UnionLayout;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Checks generated bindings against gcc's reading of their header, independently of
 * {@link BindingsGenerator}: the Java side is walked (each struct class's {@code layout()}, its
 * {@code x$offset()} methods and accessors, each constant and ioctl of the header class), a C program
 * printing the same quantities with {@code sizeof}/{@code offsetof} is written from that walk, compiled,
 * run, and the two compared. Used by kvm-backend's {@code KvmLayoutTest} and vfio-pci's {@code VfioLayoutTest}.
 * Needs gcc and the kernel headers (linux-libc-dev).
 */
public final class BindingsCheck {
    /** What the Java side says, by key ({@code "offsetof:kvm_run:io.port"}, {@code "macro:KVM_RUN"}, ...). */
    public final Map<String, Long> java = new TreeMap<>();
    /** What gcc says, same keys. */
    public final Map<String, Long> c;
    /** Per struct: accessor name ({@code "io_port"}) to C path ({@code "io.port"}). */
    private final Map<String, Map<String, String>> accessorPaths = new LinkedHashMap<>();
    private final List<Class<?>> structs;

    /**
     * Walks the bindings and asks gcc.
     *
     * @param header       the header to include, e.g. {@code linux/kvm.h}
     * @param headerClass  the generated header class, e.g. {@code kvm_h.class}
     * @param macroPattern which of its static no-argument methods are macros, e.g. {@code "KVM[A-Z0-9_]*"}
     * @param structs      the generated struct classes
     */
    public BindingsCheck(String header, Class<?> headerClass, String macroPattern, List<Class<?>> structs) throws Exception {
        this(header, null, headerClass, macroPattern, structs);
    }

    /**
     * Same, for a header that is not installed: gcc searches {@code includeDir} for it (vfio-user-pci's
     * {@code vfio-user.h}).
     */
    public BindingsCheck(String header, java.nio.file.Path includeDir, Class<?> headerClass, String macroPattern,
                         List<Class<?>> structs) throws Exception {
        this.structs = structs;
        StringBuilder program = new StringBuilder("""
                #include <stddef.h>
                #include <stdio.h>
                #include <HEADER>
                #define P(k, v) printf("%s %llu\\n", k, (unsigned long long) (v))
                int main(void) {
                """.replace("HEADER", header));
        for (Class<?> struct : structs) {
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
        for (Method m : headerClass.getMethods()) {
            if (Modifier.isStatic(m.getModifiers()) && m.getParameterCount() == 0 && m.getName().matches(macroPattern)) {
                Object v = m.invoke(null);
                long value = v instanceof Integer i ? Integer.toUnsignedLong(i) : (Long) v;
                put(program, "macro:" + m.getName(), m.getName(), value);
            }
        }
        program.append("  return 0;\n}\n");
        c = BindingsGenerator.runC(program.toString(), includeDir);
    }

    private void put(StringBuilder program, String key, String cExpression, long javaValue) {
        java.put(key, javaValue);
        program.append("  P(\"").append(key).append("\", ").append(cExpression).append(");\n");
    }

    /** Walks a group's members: offset and size of each named one, recursing into nested groups. */
    private void walk(StringBuilder program, String struct, GroupLayout group, long base, String cPrefix,
                      String jPrefix, Map<String, String> paths) {
        long offset = 0;
        for (MemoryLayout member : group.memberLayouts()) {
            long memberOffset = base + (group instanceof UnionLayout ? 0 : offset);
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

    /** @return one line for each key where Java and C disagree; empty when all agree */
    public List<String> disagreements() {
        List<String> wrong = new ArrayList<>();
        for (var e : java.entrySet()) {
            Long fromC = c.get(e.getKey());
            if (!e.getValue().equals(fromC)) {
                wrong.add(e.getKey() + ": Java " + e.getValue() + ", C " + fromC);
            }
        }
        return wrong;
    }

    /**
     * Each scalar setter writes exactly the bytes C gives its field: set all ones into a zeroed struct, and
     * the non-zero bytes must be [offsetof, offsetof + sizeof); the getter must read it back. Fails the test
     * at the first accessor that does not.
     *
     * @return how many accessors were checked
     */
    public int checkScalarAccessors() throws Exception {
        int checked = 0;
        try (Arena arena = Arena.ofConfined()) {
            for (Class<?> struct : structs) {
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
        return checked;
    }
}
