package dev.panamax.core.bindings;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Writes FFM bindings for a kernel UAPI header from a spec (e.g. kvm-backend's
 * {@code src/test/resources/kvm-bindings.spec} for {@code <linux/kvm.h>}, vfio-pci's {@code vfio-bindings.spec}
 * for {@code <linux/vfio.h>}), laid out as jextract lays them out: one header class ({@code kvm_h}) with
 * constants as static methods, one class per struct with {@code layout()}, {@code sizeof()}, {@code allocate},
 * {@code x$offset()} and static getters/setters.
 *
 * <p>Why not jextract itself: jextract is not on this machine, it drops function-like macros (so no
 * {@code _IOR(...)} ioctl numbers), and for nested anonymous structs it generates accessors that slice
 * (allocate) per call, which the vCPU exit path must not do. Here the fields of named unions and inline
 * structs (kvm_run's exit union) get flat accessors ({@code io_port(run)}) at constant offsets.
 *
 * <p>Sizes, offsets and constant values are not taken on trust: the generator writes a C program that
 * prints {@code sizeof}/{@code offsetof} of every struct, member and macro of the spec, compiles it with
 * gcc against the header under {@code /usr/include}, and lays out the Java side from its answers (explicit
 * padding where C pads). Each module's layout test ({@code KvmLayoutTest}, {@code VfioLayoutTest}) checks
 * the result independently.
 *
 * <p>A spec starts with its directives: {@code header linux/kvm.h}, {@code package dev.panamax.kvm.bindings},
 * {@code class kvm_h}, {@code ioctl-type KVMIO} and, where the header numbers its ioctls from a base
 * ({@code _IO(VFIO_TYPE, VFIO_BASE + n)}), {@code ioctl-base VFIO_BASE}. {@code access unaligned} gives the
 * accessors unaligned value layouts (the struct layouts keep C's alignment), for structs read and written inside
 * byte streams at any address, heap {@code byte[]}s included (vfio-user messages); {@code include-dir DIR}, relative
 * to the spec's folder, is searched for a header that is not installed (gcc {@code -I}). Run from the repository root:
 * <pre>
 *   java vmm-core/src/test/java/dev/panamax/core/bindings/BindingsGenerator.java \
 *        kvm-backend/src/test/resources/kvm-bindings.spec kvm-backend/src/main/java
 * </pre>
 */
public final class BindingsGenerator {

    // ---- the spec's model ----

    /** A member of a struct or union: a field, or a nested group. */
    sealed interface Member permits Field, Group {
        String name();
    }

    /** A field: a primitive ("u8".."u64", "s32") or a struct type; dims are array dimensions, flex a [] member. */
    record Field(String name, String type, List<Integer> dims, boolean flex) implements Member {
    }

    /** A struct or union; name null for an anonymous union. */
    record Group(String name, boolean union, List<Member> members) implements Member {
    }

    record Constant(String name, String javaType) {
    }

    record Ioctl(String name, String dir, int nr, String argType) {
    }

    /**
     * @param source      the spec's file name, for messages
     * @param header      the header, e.g. {@code linux/kvm.h}
     * @param packageName the Java package of the bindings
     * @param headerClass the header class's name, e.g. {@code kvm_h}
     * @param ioctlType   the macro giving the ioctls' type byte, e.g. {@code KVMIO} (declared {@code const} too)
     * @param ioctlBase   the macro the ioctl numbers count from, e.g. {@code VFIO_BASE}, or null
     */
    record Spec(String source, String header, String packageName, String headerClass, String ioctlType,
                String ioctlBase, List<Group> structs, List<Constant> constants, List<Ioctl> ioctls,
                boolean unaligned, String includeDir) {
    }

    static Spec parse(String source, List<String> lines) {
        Map<String, String> directives = new HashMap<>();
        List<Group> structs = new ArrayList<>();
        List<Constant> constants = new ArrayList<>();
        List<Ioctl> ioctls = new ArrayList<>();
        ArrayList<Group> stack = new ArrayList<>();
        int lineNo = 0;
        for (String raw : lines) {
            lineNo++;
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] t = line.split("\\s+");
            String where = source + " line " + lineNo + ": ";
            if (line.equals("}")) {
                if (stack.isEmpty()) {
                    throw new IllegalArgumentException(where + "'}' without an open struct");
                }
                Group g = stack.removeLast();
                if (stack.isEmpty()) {
                    structs.add(g);
                } else {
                    stack.getLast().members().add(g);
                }
            } else if (line.endsWith("{")) {
                boolean union = t[0].equals("union");
                if (!union && !t[0].equals("struct")) {
                    throw new IllegalArgumentException(where + "expected 'struct NAME {' or 'union [NAME] {': " + line);
                }
                String name = t.length == 3 ? t[1] : null;
                if (name == null && (stack.isEmpty() || !union)) {
                    throw new IllegalArgumentException(where + "only unions inside a struct may be anonymous: " + line);
                }
                stack.add(new Group(name, union, new ArrayList<>()));
            } else if (stack.isEmpty() && t.length == 2
                    && List.of("header", "package", "class", "ioctl-type", "ioctl-base", "access", "include-dir").contains(t[0])) {
                directives.put(t[0], t[1]);
            } else if (t[0].equals("const")) {
                constants.add(new Constant(t[1], t[2]));
            } else if (t[0].equals("ioctl")) {
                ioctls.add(new Ioctl(t[1], t[2], Integer.decode(t[3]), t.length > 4 ? t[4] : null));
            } else if (!stack.isEmpty() && t.length == 2) {
                String type = t[0];
                List<Integer> dims = new ArrayList<>();
                boolean flex = false;
                int bracket = type.indexOf('[');
                if (bracket >= 0) {
                    for (String d : type.substring(bracket + 1, type.length() - 1).split("\\]\\[", -1)) {
                        if (d.isEmpty()) {
                            flex = true;
                        } else {
                            dims.add(Integer.decode(d));
                        }
                    }
                    type = type.substring(0, bracket);
                }
                stack.getLast().members().add(new Field(t[1], type, dims, flex));
            } else {
                throw new IllegalArgumentException(where + "cannot read: " + line);
            }
        }
        if (!stack.isEmpty()) {
            throw new IllegalArgumentException(source + ": struct " + stack.getFirst().name() + " is not closed");
        }
        if (directives.containsKey("access") && !directives.get("access").equals("unaligned")) {
            throw new IllegalArgumentException(source + ": 'access' takes only 'unaligned'");
        }
        for (String d : ioctls.isEmpty() ? List.of("header", "package", "class") : List.of("header", "package", "class", "ioctl-type")) {
            if (!directives.containsKey(d)) {
                throw new IllegalArgumentException(source + ": no '" + d + "' line");
            }
        }
        return new Spec(source, directives.get("header"), directives.get("package"), directives.get("class"),
                directives.get("ioctl-type"), directives.get("ioctl-base"), structs, constants, ioctls,
                directives.containsKey("access"), directives.get("include-dir"));
    }

    static boolean isPrimitive(String type) {
        return switch (type) {
            case "u8", "u16", "u32", "u64", "s32" -> true;
            default -> false;
        };
    }

    // ---- asking gcc ----

    /** Compiles and runs a C program printing "key value" lines; returns the map. */
    public static Map<String, Long> runC(String program) throws IOException, InterruptedException {
        return runC(program, null);
    }

    /** Same, with {@code includeDir} (null for none) searched for headers ({@code gcc -I}). */
    public static Map<String, Long> runC(String program, Path includeDir) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("bindings");
        Path source = dir.resolve("probe.c");
        Path binary = dir.resolve("probe");
        Files.writeString(source, program);
        List<String> command = new ArrayList<>(List.of("gcc", "-std=gnu11"));
        if (includeDir != null) {
            command.add("-I" + includeDir);
        }
        command.addAll(List.of("-o", binary.toString(), source.toString()));
        Process cc = new ProcessBuilder(command).redirectErrorStream(true).start();
        String ccOut = new String(cc.getInputStream().readAllBytes());
        if (!cc.waitFor(60, TimeUnit.SECONDS) || cc.exitValue() != 0) {
            throw new IllegalStateException("gcc failed on " + source + ":\n" + ccOut);
        }
        Process run = new ProcessBuilder(binary.toString()).redirectErrorStream(true).start();
        String out = new String(run.getInputStream().readAllBytes());
        if (!run.waitFor(60, TimeUnit.SECONDS) || run.exitValue() != 0) {
            throw new IllegalStateException(binary + " failed:\n" + out);
        }
        Map<String, Long> values = new HashMap<>();
        for (String l : out.split("\n")) {
            if (!l.isBlank()) {
                String[] kv = l.split(" ");
                values.put(kv[0], Long.parseUnsignedLong(kv[1]));
            }
        }
        return values;
    }

    /** C path ("io.port") of a member, for offsetof/sizeof; anonymous groups have none. */
    private static void probeGroup(StringBuilder c, String struct, Group g, String prefix) {
        for (Member m : g.members()) {
            if (m instanceof Group inner && inner.name() == null) {
                probeGroup(c, struct, inner, prefix);
                continue;
            }
            String path = prefix + m.name();
            c.append("  P(\"off:").append(struct).append(':').append(path).append("\", offsetof(struct ")
                    .append(struct).append(", ").append(path).append("));\n");
            if (!(m instanceof Field f && f.flex())) {
                c.append("  P(\"size:").append(struct).append(':').append(path).append("\", sizeof(((struct ")
                        .append(struct).append(" *)0)->").append(path).append("));\n");
            }
            if (m instanceof Group inner) {
                c.append("  P(\"align:").append(struct).append(':').append(path).append("\", __alignof__(((struct ")
                        .append(struct).append(" *)0)->").append(path).append("));\n");
                probeGroup(c, struct, inner, path + ".");
            }
        }
    }

    static Map<String, Long> probe(Spec spec, Path includeDir) throws IOException, InterruptedException {
        StringBuilder c = new StringBuilder("""
                #include <stddef.h>
                #include <stdio.h>
                #include <HEADER>
                #define P(k, v) printf("%s %llu\\n", k, (unsigned long long) (v))
                int main(void) {
                """.replace("HEADER", spec.header()));
        for (Group s : spec.structs()) {
            c.append("  P(\"sizeof:").append(s.name()).append("\", sizeof(struct ").append(s.name()).append("));\n");
            c.append("  P(\"align:").append(s.name()).append("\", _Alignof(struct ").append(s.name()).append("));\n");
            probeGroup(c, s.name(), s, "");
        }
        for (Constant k : spec.constants()) {
            c.append("  P(\"const:").append(k.name()).append("\", ").append(k.name()).append(");\n");
        }
        c.append("  return 0;\n}\n");
        return runC(c.toString(), includeDir);
    }

    // ---- writing Java ----

    private final Map<String, Long> facts;
    private final Set<String> structNames = new HashSet<>();

    private final Spec spec;

    BindingsGenerator(Spec spec, Map<String, Long> facts) {
        this.spec = spec;
        this.facts = facts;
        spec.structs().forEach(s -> structNames.add(s.name()));
    }

    static String valueLayout(String type) {
        return switch (type) {
            case "u8" -> "JAVA_BYTE";
            case "u16" -> "JAVA_SHORT";
            case "u32", "s32" -> "JAVA_INT";
            case "u64" -> "JAVA_LONG";
            default -> throw new IllegalArgumentException("not a primitive: " + type);
        };
    }

    static String javaType(String type) {
        return switch (type) {
            case "u8" -> "byte";
            case "u16" -> "short";
            case "u32", "s32" -> "int";
            case "u64" -> "long";
            default -> throw new IllegalArgumentException("not a primitive: " + type);
        };
    }

    static String ofType(String type) {
        return switch (type) {
            case "u8" -> "OfByte";
            case "u16" -> "OfShort";
            case "u32", "s32" -> "OfInt";
            case "u64" -> "OfLong";
            default -> throw new IllegalArgumentException("not a primitive: " + type);
        };
    }

    private String elementLayout(Field f) {
        return isPrimitive(f.type()) ? accessLayout(f.type()) : f.type() + ".layout()";
    }

    /**
     * The value layout a field is read and written with: C's natural alignment, or with {@code access unaligned}
     * (bindings for structs that travel in byte streams, such as vfio-user messages) none, so that the accessors work
     * on any segment, a heap one over a {@code byte[]} included. The struct's own alignment stays C's.
     */
    private String accessLayout(String type) {
        return spec.unaligned() && !type.equals("u8") ? valueLayout(type) + "_UNALIGNED" : valueLayout(type);
    }

    private String fieldLayout(Field f) {
        String layout = elementLayout(f);
        List<Integer> dims = new ArrayList<>(f.dims());
        if (f.flex()) {
            dims.add(0);
        }
        for (int i = dims.size() - 1; i >= 0; i--) {
            layout = "MemoryLayout.sequenceLayout(" + dims.get(i) + ", " + layout + ")";
        }
        return layout + ".withName(\"" + f.name() + "\")";
    }

    private long fact(String key) {
        Long v = facts.get(key);
        if (v == null) {
            throw new IllegalStateException("gcc gave no value for " + key);
        }
        return v;
    }

    /** C offset of a member from the start of the top-level struct. */
    private long offsetOf(String struct, String prefix, Member m) {
        if (m instanceof Group g && g.name() == null) {
            return offsetOf(struct, prefix, g.members().getFirst());
        }
        return fact("off:" + struct + ":" + prefix + m.name());
    }

    /** C size of a member; an anonymous union's is that of its largest member. */
    private long sizeOf(String struct, String prefix, Member m) {
        if (m instanceof Field f && f.flex()) {
            return 0;
        }
        if (m instanceof Group g && g.name() == null) {
            long max = 0;
            for (Member inner : g.members()) {
                max = Math.max(max, sizeOf(struct, prefix, inner));
            }
            return max;
        }
        return fact("size:" + struct + ":" + prefix + m.name());
    }

    private int anon;

    /** The layout expression of a group whose members' C offsets start at base; size its C size. */
    private String groupLayout(String struct, Group g, String prefix, long base, long size, String indent) {
        StringBuilder b = new StringBuilder(g.union() ? "MemoryLayout.unionLayout(\n" : "MemoryLayout.structLayout(\n");
        List<String> parts = new ArrayList<>();
        long cursor = 0;
        for (Member m : g.members()) {
            long offset = offsetOf(struct, prefix, m) - base;
            long msize = sizeOf(struct, prefix, m);
            if (!g.union() && offset > cursor) {
                parts.add("MemoryLayout.paddingLayout(" + (offset - cursor) + ")");
            }
            if (g.union() && offset != 0) {
                throw new IllegalStateException(struct + ": union member " + m.name() + " not at offset 0");
            }
            parts.add(memberLayout(struct, m, prefix, base + offset, msize, indent + "    "));
            cursor = g.union() ? Math.max(cursor, msize) : offset + msize;
        }
        if (cursor < size) {
            parts.add("MemoryLayout.paddingLayout(" + (size - cursor) + ")");
        }
        for (int i = 0; i < parts.size(); i++) {
            b.append(indent).append("    ").append(parts.get(i)).append(i + 1 < parts.size() ? ",\n" : "\n");
        }
        b.append(indent).append(')');
        return b.toString();
    }

    private String memberLayout(String struct, Member m, String prefix, long offset, long size, String indent) {
        if (m instanceof Field f) {
            return fieldLayout(f);
        }
        Group g = (Group) m;
        String inner = g.name() == null ? prefix : prefix + g.name() + ".";
        String name = g.name() == null ? "$anon$" + (anon++) : g.name();
        String layout = groupLayout(struct, g, inner, offset, size, indent) + ".withName(\"" + name + "\")";
        if (g.name() != null) {
            layout += alignment(fact("align:" + struct + ":" + prefix + g.name()), naturalAlignment(g));
        }
        return layout;
    }

    /**
     * Java aligns a group to its largest member; C may align more, when the header has members that the
     * spec leaves out (kvm_irq_routing_entry.u holds an s390 struct of u64s): then say so.
     */
    private static String alignment(long c, long natural) {
        return c > natural ? ".withByteAlignment(" + c + ")" : "";
    }

    private long naturalAlignment(Member m) {
        if (m instanceof Field f) {
            if (spec.unaligned() && isPrimitive(f.type())) {
                return 1;
            }
            return isPrimitive(f.type()) ? switch (f.type()) {
                case "u8" -> 1;
                case "u16" -> 2;
                case "u32", "s32" -> 4;
                default -> 8;
            } : fact("align:" + f.type());
        }
        long max = 1;
        for (Member inner : ((Group) m).members()) {
            max = Math.max(max, naturalAlignment(inner));
        }
        return max;
    }

    /** Accessors for the fields of a group; accessor names are the C path with '.' turned into '_'. */
    private void accessors(StringBuilder b, String struct, Group g, String cPrefix, String jPrefix, Set<String> names) {
        for (Member m : g.members()) {
            if (m instanceof Group inner) {
                if (inner.name() == null) {
                    accessors(b, struct, inner, cPrefix, jPrefix, names);
                } else {
                    String jName = jPrefix + inner.name();
                    offsetMethod(b, struct, jName, fact("off:" + struct + ":" + cPrefix + inner.name()), cPrefix + inner.name(), names);
                    accessors(b, struct, inner, cPrefix + inner.name() + ".", jName + "_", names);
                }
                continue;
            }
            Field f = (Field) m;
            String cPath = cPrefix + f.name();
            String jName = jPrefix + f.name();
            long offset = fact("off:" + struct + ":" + cPath);
            offsetMethod(b, struct, jName, offset, cPath, names);
            String off = jName + "$OFFSET";
            if (f.flex()) {
                String elementSize = isPrimitive(f.type()) ? valueLayout(f.type()) + ".byteSize()" : f.type() + ".sizeof()";
                if (isPrimitive(f.type())) {
                    String jt = javaType(f.type());
                    b.append("""
                                /** Element {@code index} of the flexible array {@code %1$s[]}, past the end of this layout. */
                                public static %2$s %3$s(MemorySegment struct, long index) {
                                    return struct.get(%4$s, %5$s + index * %6$s);
                                }

                                /** Sets element {@code index} of the flexible array {@code %1$s[]}. */
                                public static void %3$s(MemorySegment struct, long index, %2$s fieldValue) {
                                    struct.set(%4$s, %5$s + index * %6$s, fieldValue);
                                }

                            """.formatted(cPath, jt, jName, accessLayout(f.type()), off, elementSize));
                } else {
                    b.append("""
                                /** Element {@code index} of the flexible array {@code %1$s[]} (a {@link %2$s}), past the end of this layout. */
                                public static MemorySegment %3$s(MemorySegment struct, long index) {
                                    return struct.asSlice(%4$s + index * %2$s.sizeof(), %2$s.%5$s());
                                }

                            """.formatted(cPath, f.type(), jName, off, spec.unaligned() ? "sizeof" : "layout"));
                }
                continue;
            }
            String layoutConst = jName + "$LAYOUT";
            if (f.dims().isEmpty() && isPrimitive(f.type())) {
                String jt = javaType(f.type());
                b.append("""
                            private static final %1$s %2$s = %3$s;

                            /** Getter for {@code %4$s} (%5$s). */
                            public static %6$s %7$s(MemorySegment struct) {
                                return struct.get(%2$s, %8$s);
                            }

                            /** Setter for {@code %4$s} (%5$s). */
                            public static void %7$s(MemorySegment struct, %6$s fieldValue) {
                                struct.set(%2$s, %8$s, fieldValue);
                            }

                        """.formatted(ofType(f.type()), layoutConst, accessLayout(f.type()), cPath, f.type(), jt, jName, off));
            } else if (f.dims().isEmpty()) {
                b.append("""
                            /** The nested {@code struct %1$s %2$s}, as a slice of {@code struct} (no copy). */
                            public static MemorySegment %3$s(MemorySegment struct) {
                                return struct.asSlice(%4$s, %1$s.%5$s());
                            }

                            /** Copies {@code fieldValue} (a {@code struct %1$s}) into {@code %2$s}. */
                            public static void %3$s(MemorySegment struct, MemorySegment fieldValue) {
                                MemorySegment.copy(fieldValue, 0L, struct, %4$s, %1$s.sizeof());
                            }

                        """.formatted(f.type(), cPath, jName, off, spec.unaligned() ? "sizeof" : "layout"));
            } else {
                long bytes = fact("size:" + struct + ":" + cPath);
                b.append("""
                            /** The array {@code %1$s} (%2$d bytes), as a slice of {@code struct} (no copy). */
                            public static MemorySegment %3$s(MemorySegment struct) {
                                return struct.asSlice(%4$s, %2$dL);
                            }

                            /** Copies {@code fieldValue} (%2$d bytes) into the array {@code %1$s}. */
                            public static void %3$s(MemorySegment struct, MemorySegment fieldValue) {
                                MemorySegment.copy(fieldValue, 0L, struct, %4$s, %2$dL);
                            }

                        """.formatted(cPath, bytes, jName, off));
                if (f.dims().size() == 1 && isPrimitive(f.type())) {
                    String jt = javaType(f.type());
                    b.append("""
                                /** Element {@code index} of {@code %1$s[%2$d]}. */
                                public static %3$s %4$s(MemorySegment struct, long index) {
                                    return struct.get(%5$s, %6$s + java.util.Objects.checkIndex(index, %2$dL) * %5$s.byteSize());
                                }

                                /** Sets element {@code index} of {@code %1$s[%2$d]}. */
                                public static void %4$s(MemorySegment struct, long index, %3$s fieldValue) {
                                    struct.set(%5$s, %6$s + java.util.Objects.checkIndex(index, %2$dL) * %5$s.byteSize(), fieldValue);
                                }

                            """.formatted(cPath, f.dims().getFirst(), jt, jName, accessLayout(f.type()), off));
                }
            }
        }
    }

    private static void offsetMethod(StringBuilder b, String struct, String jName, long offset, String cPath, Set<String> names) {
        if (!names.add(jName)) {
            throw new IllegalStateException("struct " + struct + ": two accessors named " + jName);
        }
        b.append("""
                    private static final long %1$s$OFFSET = %2$d;

                    /** Offset of {@code %3$s} in bytes from the start of {@code struct %4$s}. */
                    public static final long %1$s$offset() {
                        return %1$s$OFFSET;
                    }

                """.formatted(jName, offset, cPath, struct));
    }

    String structClass(Group s) {
        anon = 0;
        long size = fact("sizeof:" + s.name());
        String layout = groupLayout(s.name(), s, "", 0, size, "        ")
                + alignment(fact("align:" + s.name()), naturalAlignment(s));
        StringBuilder acc = new StringBuilder();
        accessors(acc, s.name(), s, "", "", new HashSet<>());
        return """
                %6$s
                package %1$s;

                import java.lang.foreign.GroupLayout;
                import java.lang.foreign.MemoryLayout;
                import java.lang.foreign.MemorySegment;
                import java.lang.foreign.SegmentAllocator;
                import java.lang.foreign.ValueLayout.OfByte;
                import java.lang.foreign.ValueLayout.OfInt;
                import java.lang.foreign.ValueLayout.OfLong;
                import java.lang.foreign.ValueLayout.OfShort;

                import static java.lang.foreign.ValueLayout.JAVA_BYTE;
                import static java.lang.foreign.ValueLayout.JAVA_INT;
                import static java.lang.foreign.ValueLayout.JAVA_LONG;
                import static java.lang.foreign.ValueLayout.JAVA_SHORT;%8$s

                /**
                 * {@code struct %2$s} from {@code <%7$s>} (x86-64): %3$d bytes.
                 */
                @SuppressWarnings("unused")
                public final class %2$s {

                    private %2$s() {
                    }

                    private static final GroupLayout $LAYOUT = %4$s.withName("%2$s");

                    /** The layout of {@code struct %2$s}, with C's padding spelled out. */
                    public static final GroupLayout layout() {
                        return $LAYOUT;
                    }

                    /** {@code sizeof(struct %2$s)} in bytes. */
                    public static long sizeof() {
                        return $LAYOUT.byteSize();
                    }

                    /** Allocates one zeroed {@code struct %2$s}. */
                    public static MemorySegment allocate(SegmentAllocator allocator) {
                        return allocator.allocate($LAYOUT);
                    }

                %5$s}
                """.formatted(spec.packageName(), s.name(), size, layout.stripLeading(), acc, generated(), spec.header(),
                spec.unaligned() ? "\nimport static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;"
                        + "\nimport static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;"
                        + "\nimport static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;" : "");
    }

    String headerClass(Spec spec) {
        StringBuilder b = new StringBuilder();
        b.append("""
                %s
                package %s;

                /**
                 * The macros of {@code <%s>} (x86-64) that Panamax uses, as static methods in jextract's manner:
                 * {@code %s.%s()}.
                 *
                 * <p>Ioctl request numbers are {@code unsigned long} in C and {@code long} here. jextract cannot
                 * extract function-like macros, so the {@code _IO/_IOR/_IOW/_IOWR} encoding of
                 * {@code <asm-generic/ioctl.h>} is written out below and each request is computed from its
                 * type, number and argument size exactly as the header's definition does.
                 */
                public final class %s {

                    private %s() {
                    }

                    // <asm-generic/ioctl.h>: bits 0-7 number, 8-15 type, 16-29 argument size, 30-31 direction.
                    private static final int _IOC_NRSHIFT = 0;
                    private static final int _IOC_TYPESHIFT = 8;
                    private static final int _IOC_SIZESHIFT = 16;
                    private static final int _IOC_DIRSHIFT = 30;
                    private static final long _IOC_NONE = 0;
                    private static final long _IOC_WRITE = 1;
                    private static final long _IOC_READ = 2;

                    /** {@code _IOC(dir, type, nr, size)}. */
                    static long _IOC(long dir, int type, int nr, long size) {
                        return (dir << _IOC_DIRSHIFT) | ((long) type << _IOC_TYPESHIFT) | ((long) nr << _IOC_NRSHIFT)
                                | (size << _IOC_SIZESHIFT);
                    }

                    /** {@code _IO(type, nr)}: no argument. */
                    static long _IO(int type, int nr) {
                        return _IOC(_IOC_NONE, type, nr, 0);
                    }

                    /** {@code _IOR(type, nr, argtype)}: the kernel writes {@code size} bytes to the argument. */
                    static long _IOR(int type, int nr, long size) {
                        return _IOC(_IOC_READ, type, nr, size);
                    }

                    /** {@code _IOW(type, nr, argtype)}: the kernel reads {@code size} bytes from the argument. */
                    static long _IOW(int type, int nr, long size) {
                        return _IOC(_IOC_WRITE, type, nr, size);
                    }

                    /** {@code _IOWR(type, nr, argtype)}: both. */
                    static long _IOWR(int type, int nr, long size) {
                        return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
                    }

                """.formatted(generated(), spec.packageName(), spec.header(), spec.headerClass(),
                spec.ioctls().isEmpty() ? spec.constants().getFirst().name() : spec.ioctls().getFirst().name(),
                spec.headerClass(), spec.headerClass()));
        if (spec.ioctls().isEmpty()) {
            // No ioctls (vfio-user's header): the paragraph on their encoding and the _IO helpers have no use.
            int para = b.indexOf(" *\n * <p>Ioctl");
            b.delete(para, b.indexOf(" */", para));
            int helpers = b.indexOf("    // <asm-generic/ioctl.h>");
            b.delete(helpers, b.indexOf("    }\n\n", b.indexOf("static long _IOWR")) + "    }\n\n".length());
        }
        for (Constant k : spec.constants()) {
            long v = fact("const:" + k.name());
            String value = k.javaType().equals("int") ? "0x" + Long.toHexString(v) : "0x" + Long.toHexString(v) + "L";
            if (k.javaType().equals("int") && v > 0xffffffffL) {
                throw new IllegalStateException(k.name() + " = " + v + " does not fit an int");
            }
            b.append("""
                        /** {@code #define %1$s %2$d} */
                        public static %3$s %1$s() {
                            return %4$s;
                        }

                    """.formatted(k.name(), v, k.javaType(), value));
        }
        for (Ioctl io : spec.ioctls()) {
            String arg = io.argType() == null ? null
                    : isPrimitive(io.argType()) ? "java.lang.foreign.ValueLayout." + valueLayout(io.argType()) + ".byteSize()"
                    : io.argType() + ".sizeof()";
            String cArg = io.argType() == null ? "" : ", " + (isPrimitive(io.argType()) ? "__" + io.argType() : "struct " + io.argType());
            // The number as the header writes it: 0x05, or VFIO_BASE + 5 where the header counts from a base.
            String nrC = spec.ioctlBase() == null ? "0x%02x".formatted(io.nr()) : spec.ioctlBase() + " + " + io.nr();
            String nrJava = spec.ioctlBase() == null ? "0x%02x".formatted(io.nr()) : spec.ioctlBase() + "() + " + io.nr();
            String expr = arg == null ? "_IO(%s(), %s)".formatted(spec.ioctlType(), nrJava)
                    : "_%s(%s(), %s, %s)".formatted(io.dir(), spec.ioctlType(), nrJava, arg);
            b.append("""
                        /** {@code #define %1$s _%2$s(%3$s, %4$s%5$s)} */
                        public static long %1$s() {
                            return %6$s;
                        }

                    """.formatted(io.name(), io.dir(), spec.ioctlType(), nrC, cArg, expr));
        }
        b.append("}\n");
        return b.toString();
    }

    /** The first line of every generated file. */
    private String generated() {
        return "// Generated by BindingsGenerator from " + spec.source() + " and gcc's reading of <" + spec.header()
                + ">. Do not edit.";
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: BindingsGenerator SPEC SOURCE_ROOT   (e.g. kvm-backend/src/test/resources/kvm-bindings.spec kvm-backend/src/main/java)");
            System.exit(2);
        }
        Path specFile = Path.of(args[0]);
        Spec spec = parse(specFile.getFileName().toString(), Files.readAllLines(specFile));
        // include-dir, where the header is not installed (vfio-user's), is relative to the spec's folder.
        Path includeDir = spec.includeDir() == null ? null : specFile.toAbsolutePath().getParent().resolve(spec.includeDir());
        Map<String, Long> facts = probe(spec, includeDir);
        BindingsGenerator gen = new BindingsGenerator(spec, facts);
        Path out = Path.of(args[1], spec.packageName().replace('.', '/'));
        Files.createDirectories(out);
        Map<String, String> files = new LinkedHashMap<>();
        for (Group s : spec.structs()) {
            files.put(s.name() + ".java", gen.structClass(s));
        }
        files.put(spec.headerClass() + ".java", gen.headerClass(spec));
        for (var e : files.entrySet()) {
            Files.writeString(out.resolve(e.getKey()), e.getValue());
            System.out.println("wrote " + out.resolve(e.getKey()));
        }
    }
}
