package dev.panamax.firmware.acpi;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A small encoder for ACPI Machine Language (ACPI 6.5, chapter 20 "ACPI Machine Language (AML) Specification"),
 * enough for a DSDT that describes a machine: names, scopes, devices, methods that return a constant, integers,
 * strings, packages and buffers. Every method returns the encoded bytes of one AML term or object; terms nest by
 * passing the bytes of the inner terms. Resource templates (the buffers {@code _CRS} returns) are in
 * {@link AmlResource}.
 *
 * <p>Each encoding follows the grammar of ACPI 6.5, 20.2 "AML Grammar Definition" and produces what ACPICA's
 * {@code iasl} compiles from the same ASL (with named-reference optimization off, {@code -on}); the unit tests
 * compare the two byte for byte.
 */
public final class Aml {
    private Aml() {
    }

    /** ZeroOp (20.2.3). */
    public static final int ZERO_OP = 0x00;
    /** OneOp. */
    public static final int ONE_OP = 0x01;
    /** OnesOp: all bits set (in a table of revision 2 or more, 64 bits). */
    public static final int ONES_OP = 0xFF;
    /** BytePrefix: a ByteData follows. */
    public static final int BYTE_PREFIX = 0x0A;
    /** WordPrefix: a WordData (2 bytes, little-endian) follows. */
    public static final int WORD_PREFIX = 0x0B;
    /** DWordPrefix: a DWordData follows. */
    public static final int DWORD_PREFIX = 0x0C;
    /** StringPrefix: an ASCII string and a NUL follow. */
    public static final int STRING_PREFIX = 0x0D;
    /** QWordPrefix: a QWordData follows. */
    public static final int QWORD_PREFIX = 0x0E;
    /** NameOp (20.2.5.1). */
    public static final int NAME_OP = 0x08;
    /** ScopeOp. */
    public static final int SCOPE_OP = 0x10;
    /** BufferOp (20.2.5.4). */
    public static final int BUFFER_OP = 0x11;
    /** PackageOp. */
    public static final int PACKAGE_OP = 0x12;
    /** MethodOp (20.2.5.2). */
    public static final int METHOD_OP = 0x14;
    /** ExtOpPrefix: the first byte of two-byte opcodes. */
    public static final int EXT_OP_PREFIX = 0x5B;
    /** DeviceOp, after {@link #EXT_OP_PREFIX}. */
    public static final int DEVICE_OP = 0x82;
    /** ReturnOp (20.2.5.3). */
    public static final int RETURN_OP = 0xA4;
    /** RootChar '\' (20.2.2). */
    public static final int ROOT_CHAR = '\\';
    /** ParentPrefixChar '^'. */
    public static final int PARENT_PREFIX_CHAR = '^';
    /** DualNamePrefix: two NameSegs follow. */
    public static final int DUAL_NAME_PREFIX = 0x2E;
    /** MultiNamePrefix: a SegCount byte and that many NameSegs follow. */
    public static final int MULTI_NAME_PREFIX = 0x2F;
    /** NullName: a name path of no segments. */
    public static final int NULL_NAME = 0x00;
    /** Largest value a PkgLength can encode: 28 bits. */
    public static final int MAX_PKG_LENGTH = (1 << 28) - 1;

    /**
     * PkgLength (20.2.4) for a package whose contents after the PkgLength are {@code bodyLength} bytes: the encoded
     * length counts its own bytes. One byte (bits 0..5) for totals up to 63; otherwise bits 6..7 of the lead byte
     * give the number of following bytes (1..3), its bits 0..3 the low nibble and each following byte the next 8 bits.
     *
     * @param bodyLength bytes that follow the PkgLength in the package
     * @return 1 to 4 bytes
     * @throws IllegalArgumentException if the package is longer than {@value #MAX_PKG_LENGTH} bytes or negative
     */
    public static byte[] pkgLength(int bodyLength) {
        if (bodyLength < 0) {
            throw new IllegalArgumentException("AML package length " + bodyLength + " is negative");
        }
        if (bodyLength + 1 <= 0x3F) {
            return new byte[] {(byte) (bodyLength + 1)};
        }
        for (int extra = 1; extra <= 3; extra++) {
            long total = (long) bodyLength + 1 + extra;
            if (total < 1L << (4 + 8 * extra)) {
                byte[] b = new byte[1 + extra];
                b[0] = (byte) (extra << 6 | (total & 0x0F));
                for (int i = 1; i <= extra; i++) {
                    b[i] = (byte) (total >>> (4 + 8 * (i - 1)));
                }
                return b;
            }
        }
        throw new IllegalArgumentException("AML package of " + bodyLength + " bytes is longer than "
                + MAX_PKG_LENGTH + " (PkgLength has 28 bits)");
    }

    /**
     * A NameSeg (20.2.2): a lead character A-Z or '_', then up to three of A-Z, 0-9, '_', padded with '_' to four.
     *
     * @param seg one to four characters
     * @return four bytes
     * @throws IllegalArgumentException if the segment is empty, too long or has other characters
     */
    public static byte[] nameSeg(String seg) {
        if (seg.isEmpty() || seg.length() > 4) {
            throw new IllegalArgumentException("AML NameSeg '" + seg + "' is not 1 to 4 characters");
        }
        byte[] b = {'_', '_', '_', '_'};
        for (int i = 0; i < seg.length(); i++) {
            char c = seg.charAt(i);
            boolean lead = c >= 'A' && c <= 'Z' || c == '_';
            if (!(lead || i > 0 && c >= '0' && c <= '9')) {
                throw new IllegalArgumentException("AML NameSeg '" + seg + "' has '" + c + "' at " + i
                        + " (A-Z and '_' lead, then A-Z, 0-9, '_')");
            }
            b[i] = (byte) c;
        }
        return b;
    }

    /**
     * A NameString (20.2.2): an optional root prefix {@code \} or any number of parent prefixes {@code ^}, then a
     * name path of dot-separated segments: one NameSeg as is, two after {@link #DUAL_NAME_PREFIX}, three or more
     * after {@link #MULTI_NAME_PREFIX} and a count, none as {@link #NULL_NAME}. Examples: {@code "_HID"},
     * {@code "\\_SB.PCI0"}, {@code "^^C000"}, {@code "\\"}.
     *
     * @param path the ASL name
     * @return the encoded NameString
     * @throws IllegalArgumentException for a bad segment or more than 255 segments
     */
    public static byte[] nameString(String path) {
        var out = new ByteArrayOutputStream();
        int i = 0;
        if (path.startsWith("\\")) {
            out.write(ROOT_CHAR);
            i = 1;
        } else {
            while (i < path.length() && path.charAt(i) == '^') {
                out.write(PARENT_PREFIX_CHAR);
                i++;
            }
        }
        String rest = path.substring(i);
        List<String> segs = rest.isEmpty() ? List.of() : List.of(rest.split("\\.", -1));
        if (segs.size() > 255) {
            throw new IllegalArgumentException("AML name '" + path + "' has more than 255 segments");
        }
        switch (segs.size()) {
            case 0 -> out.write(NULL_NAME);
            case 1 -> { }
            case 2 -> out.write(DUAL_NAME_PREFIX);
            default -> {
                out.write(MULTI_NAME_PREFIX);
                out.write(segs.size());
            }
        }
        for (String s : segs) {
            out.writeBytes(nameSeg(s));
        }
        return out.toByteArray();
    }

    /**
     * An integer constant in its smallest encoding (20.2.3 ComputationalData): {@link #ZERO_OP} for 0,
     * {@link #ONE_OP} for 1, {@link #ONES_OP} for all 64 bits set, else the smallest of ByteConst, WordConst,
     * DWordConst and QWordConst that holds it, as iasl optimizes integers.
     *
     * @param value the value, taken as unsigned 64 bits
     * @return 1 to 9 bytes
     */
    public static byte[] integer(long value) {
        if (value == 0) {
            return new byte[] {ZERO_OP};
        }
        if (value == 1) {
            return new byte[] {ONE_OP};
        }
        if (value == -1L) {
            return new byte[] {(byte) ONES_OP};
        }
        if ((value & ~0xFFL) == 0) {
            return new byte[] {BYTE_PREFIX, (byte) value};
        }
        if ((value & ~0xFFFFL) == 0) {
            return concat(new byte[] {WORD_PREFIX}, le(value, 2));
        }
        if ((value & ~0xFFFF_FFFFL) == 0) {
            return concat(new byte[] {DWORD_PREFIX}, le(value, 4));
        }
        return concat(new byte[] {QWORD_PREFIX}, le(value, 8));
    }

    /**
     * A String constant (20.2.3): {@link #STRING_PREFIX}, the ASCII characters (0x01..0x7F), a NUL.
     *
     * @param s the string
     * @return the encoded string
     * @throws IllegalArgumentException if it has a NUL or a non-ASCII character
     */
    public static byte[] string(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) == 0 || s.charAt(i) > 0x7F) {
                throw new IllegalArgumentException("AML string '" + s + "' has a character outside 0x01..0x7F");
            }
        }
        return concat(new byte[] {STRING_PREFIX}, s.getBytes(StandardCharsets.US_ASCII), new byte[] {0});
    }

    /**
     * The compressed EISA id of a PNP id, as the ASL macro {@code EisaId} computes it (ACPI 6.5, 19.6.35): three
     * upper-case letters each as 5 bits ('A' = 1) and four hex digits, packed big-endian into 32 bits and then
     * stored byte-swapped, so that the AML DWord's bytes read in the id's order. "PNP0A08" gives 0x080AD041.
     *
     * @param id seven characters: three letters A-Z, four hex digits
     * @return the 32-bit value
     * @throws IllegalArgumentException if the id is not of that form
     */
    public static long eisaIdValue(String id) {
        if (!id.matches("[A-Z]{3}[0-9A-F]{4}")) {
            throw new IllegalArgumentException("EISA id '" + id + "' is not three letters A-Z and four hex digits");
        }
        int v = (id.charAt(0) - '@') << 26 | (id.charAt(1) - '@') << 21 | (id.charAt(2) - '@') << 16
                | Integer.parseInt(id.substring(3), 16);
        return Integer.toUnsignedLong(Integer.reverseBytes(v));
    }

    /**
     * {@code EisaId("PNP0A08")} as an integer term.
     *
     * @param id the PNP id, see {@link #eisaIdValue}
     * @return the encoded integer (a DWordConst for every real id)
     */
    public static byte[] eisaId(String id) {
        return integer(eisaIdValue(id));
    }

    /**
     * DefName (20.2.5.1): {@code Name(name, object)}.
     *
     * @param name   a NameString, see {@link #nameString}
     * @param object the encoded data object (integer, string, package, buffer)
     * @return NameOp NameString DataRefObject
     */
    public static byte[] name(String name, byte[] object) {
        return concat(new byte[] {NAME_OP}, nameString(name), object);
    }

    /**
     * DefScope (20.2.5.1): {@code Scope(name) { terms }}.
     *
     * @param name  the scope's NameString
     * @param terms the encoded terms inside it
     * @return ScopeOp PkgLength NameString TermList
     */
    public static byte[] scope(String name, byte[]... terms) {
        return concat(new byte[] {SCOPE_OP}, withPkgLength(concat(nameString(name), concat(terms))));
    }

    /**
     * DefDevice (20.2.5.2): {@code Device(name) { terms }}.
     *
     * @param name  the device's NameString
     * @param terms the encoded terms inside it
     * @return ExtOpPrefix DeviceOp PkgLength NameString TermList
     */
    public static byte[] device(String name, byte[]... terms) {
        return concat(new byte[] {EXT_OP_PREFIX, (byte) DEVICE_OP}, withPkgLength(concat(nameString(name), concat(terms))));
    }

    /**
     * DefMethod (20.2.5.2): {@code Method(name, argCount, Serialized|NotSerialized) { terms }}, sync level 0.
     *
     * @param name       the method's NameString
     * @param argCount   0..7
     * @param serialized the SerializeFlag (MethodFlags bit 3)
     * @param terms      the encoded terms of the body
     * @return MethodOp PkgLength NameString MethodFlags TermList
     * @throws IllegalArgumentException if argCount is out of range
     */
    public static byte[] method(String name, int argCount, boolean serialized, byte[]... terms) {
        if (argCount < 0 || argCount > 7) {
            throw new IllegalArgumentException("AML method " + name + ": " + argCount + " arguments (0..7)");
        }
        byte flags = (byte) (argCount | (serialized ? 1 << 3 : 0));
        return concat(new byte[] {METHOD_OP}, withPkgLength(concat(nameString(name), new byte[] {flags}, concat(terms))));
    }

    /**
     * DefReturn (20.2.5.3): {@code Return(value)}.
     *
     * @param value the encoded term returned
     * @return ReturnOp ArgObject
     */
    public static byte[] returnOp(byte[] value) {
        return concat(new byte[] {(byte) RETURN_OP}, value);
    }

    /**
     * DefPackage (20.2.5.4): {@code Package() { elements }}, NumElements the number given.
     *
     * @param elements the encoded elements (integers, strings, names, packages, buffers)
     * @return PackageOp PkgLength NumElements PackageElementList
     * @throws IllegalArgumentException for more than 255 elements (a VarPackage would be needed)
     */
    public static byte[] packageOp(byte[]... elements) {
        if (elements.length > 255) {
            throw new IllegalArgumentException("AML package of " + elements.length + " elements (at most 255)");
        }
        return concat(new byte[] {PACKAGE_OP}, withPkgLength(concat(new byte[] {(byte) elements.length}, concat(elements))));
    }

    /** {@link #packageOp(byte[]...)} for a list. */
    public static byte[] packageOp(List<byte[]> elements) {
        return packageOp(elements.toArray(byte[][]::new));
    }

    /**
     * DefBuffer (20.2.5.4): {@code Buffer() { bytes }}, its BufferSize the byte count as an integer term.
     *
     * @param bytes the buffer's contents
     * @return BufferOp PkgLength BufferSize ByteList
     */
    public static byte[] buffer(byte[] bytes) {
        return concat(new byte[] {BUFFER_OP}, withPkgLength(concat(integer(bytes.length), bytes)));
    }

    /**
     * @param body the bytes of a package's contents
     * @return PkgLength followed by the body
     */
    static byte[] withPkgLength(byte[] body) {
        return concat(pkgLength(body.length), body);
    }

    /** @return the parts one after the other */
    public static byte[] concat(byte[]... parts) {
        var out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    /** @return {@code value}'s low {@code n} bytes, little-endian */
    static byte[] le(long value, int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        return b;
    }
}
