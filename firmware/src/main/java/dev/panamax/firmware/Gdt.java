package dev.panamax.firmware;

import dev.panamax.core.cpu.Segment;

/**
 * Encoding and decoding of 8-byte x86 code/data segment descriptors (Intel SDM Vol. 3A, 3.4.5
 * "Segment Descriptors", Figure 3-8), so the GDT written into guest memory and the
 * {@link Segment} values loaded into the vCPU's hidden segment registers agree.
 *
 * <pre>
 *   bits  0..15  limit 0..15         bits 40..43  type      bit 47  P
 *   bits 16..39  base 0..23          bit  44      S         bits 48..51  limit 16..19
 *                                    bits 45..46  DPL       bit 52 AVL, 53 L, 54 D/B, 55 G
 *   bits 56..63  base 24..31
 * </pre>
 */
public final class Gdt {
    private Gdt() {
    }

    /**
     * @param s a code or data segment; its limit is in bytes, so with G set it must end in 0xFFF
     * @return the 8-byte descriptor for it (the selector is not part of a descriptor)
     * @throws IllegalArgumentException if base or limit cannot be encoded
     */
    public static long encode(Segment s) {
        if (s.base() < 0 || s.base() > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException(String.format("segment base 0x%X does not fit in 32 bits", s.base()));
        }
        long limit = s.limit();
        if (s.g()) {
            if ((limit & 0xFFF) != 0xFFF) {
                throw new IllegalArgumentException(String.format("segment limit 0x%X with G set must end in 0xFFF", limit));
            }
            limit >>>= 12;
        }
        if (limit < 0 || limit > 0xFFFFF) {
            throw new IllegalArgumentException(String.format("segment limit 0x%X does not fit in 20 bits", s.limit()));
        }
        long d = limit & 0xFFFF;
        d |= (s.base() & 0xFFFFFF) << 16;
        d |= (long) (s.type() & 0xF) << 40;
        d |= (s.s() ? 1L : 0) << 44;
        d |= (long) (s.dpl() & 3) << 45;
        d |= (s.present() ? 1L : 0) << 47;
        d |= ((limit >>> 16) & 0xF) << 48;
        d |= (s.l() ? 1L : 0) << 53;
        d |= (s.db() ? 1L : 0) << 54;
        d |= (s.g() ? 1L : 0) << 55;
        d |= ((s.base() >>> 24) & 0xFF) << 56;
        return d;
    }

    /**
     * @param descriptor an 8-byte descriptor
     * @param selector   the selector it is loaded with
     * @return the segment register contents the CPU caches when loading it (limit scaled by G)
     */
    public static Segment decode(long descriptor, int selector) {
        long base = ((descriptor >>> 16) & 0xFFFFFF) | (((descriptor >>> 56) & 0xFF) << 24);
        long limit = (descriptor & 0xFFFF) | (((descriptor >>> 48) & 0xF) << 16);
        boolean g = bit(descriptor, 55);
        if (g) {
            limit = (limit << 12) | 0xFFF;
        }
        return new Segment(selector, base, limit, (int) ((descriptor >>> 40) & 0xF), bit(descriptor, 47),
                (int) ((descriptor >>> 45) & 3), bit(descriptor, 54), bit(descriptor, 44), bit(descriptor, 53), g);
    }

    private static boolean bit(long value, int n) {
        return ((value >>> n) & 1) != 0;
    }
}
