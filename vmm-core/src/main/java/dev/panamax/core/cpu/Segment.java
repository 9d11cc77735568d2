package dev.panamax.core.cpu;

/**
 * One x86 segment register as the CPU caches it: the visible selector and the hidden descriptor
 * fields (Intel SDM Vol. 3A, 3.4.3 and 3.4.5). Same fields as {@code struct kvm_segment} in
 * {@code linux/kvm.h}, so a backend copies them one to one.
 *
 * @param selector the 16-bit selector (index into the GDT times 8, plus TI and RPL)
 * @param base     the linear base address
 * @param limit    the limit in bytes, already scaled by granularity (0xffffffff for a flat 4 GiB segment)
 * @param type     the 4-bit descriptor type (e.g. 0xb: code, execute/read, accessed; 0x3: data, read/write, accessed)
 * @param present  the P bit
 * @param dpl      the descriptor privilege level, 0..3
 * @param db       the D/B bit (32-bit default operand size)
 * @param s        the S bit (code or data rather than a system segment)
 * @param l        the L bit (64-bit code segment)
 * @param g        the G bit (limit counted in 4 KiB units)
 */
public record Segment(int selector, long base, long limit, int type, boolean present, int dpl,
                      boolean db, boolean s, boolean l, boolean g) {
}
