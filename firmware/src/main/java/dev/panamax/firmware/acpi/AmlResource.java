package dev.panamax.firmware.acpi;

import static dev.panamax.firmware.acpi.Aml.concat;
import static dev.panamax.firmware.acpi.Aml.le;

/**
 * Resource data descriptors (ACPI 6.5, 6.4 "Resource Data Types for ACPI") and the ASL
 * {@code ResourceTemplate} that wraps them into the buffer a {@code _CRS} object holds. Each method returns one
 * descriptor's bytes as iasl emits it for the ASL macro of the same name (19.6); multi-byte fields little-endian.
 *
 * <p>General flags of the address space descriptors (6.4.3.5, table "Address Space Resource Descriptor
 * General Flags"): Panamax's bridge windows are producers (bit 0 = 0), positive decode (bit 1 = 0), with fixed
 * minimum and maximum (bits 2 and 3 set): {@link #PRODUCER_FIXED}.
 */
public final class AmlResource {
    private AmlResource() {
    }

    /** Small item IO Port Descriptor tag byte (6.4.2.5): type 0, name 0x8, length 7. */
    public static final int IO_TAG = 0x47;
    /** Small item IRQ Descriptor without the information byte (6.4.2.1): name 0x4, length 2. */
    public static final int IRQ_NO_FLAGS_TAG = 0x22;
    /** Small item End Tag (6.4.2.9): name 0xF, length 1. */
    public static final int END_TAG = 0x79;
    /** Large item 32-bit Fixed Memory Range Descriptor (6.4.3.4). */
    public static final int MEMORY32_FIXED_TAG = 0x86;
    /** Large item DWord Address Space Descriptor (6.4.3.5.2). */
    public static final int DWORD_ADDRESS_TAG = 0x87;
    /** Large item Word Address Space Descriptor (6.4.3.5.3). */
    public static final int WORD_ADDRESS_TAG = 0x88;
    /** Large item Extended Interrupt Descriptor (6.4.3.6). */
    public static final int EXTENDED_INTERRUPT_TAG = 0x89;
    /** Large item QWord Address Space Descriptor (6.4.3.5.1). */
    public static final int QWORD_ADDRESS_TAG = 0x8A;

    /** Address space Resource Type (6.4.3.5): memory range. */
    public static final int MEMORY_RANGE = 0;
    /** Resource Type: I/O range. */
    public static final int IO_RANGE = 1;
    /** Resource Type: bus number range. */
    public static final int BUS_NUMBER_RANGE = 2;
    /** General flags: producer, positive decode, MinFixed (bit 2), MaxFixed (bit 3). */
    public static final int PRODUCER_FIXED = 0x0C;
    /** I/O type-specific flags: ISA and non-ISA ranges (_RNG = 3, EntireRange). */
    public static final int IO_ENTIRE_RANGE = 0x03;
    /** Memory type-specific flags: read-write (_RW, bit 0), non-cacheable (_MEM = 0). */
    public static final int MEMORY_READ_WRITE_NON_CACHEABLE = 0x01;
    /** Memory type-specific flags: read-write, cacheable (_MEM = 1). */
    public static final int MEMORY_READ_WRITE_CACHEABLE = 0x03;

    /** Extended interrupt vector flags bit 0: the device consumes the interrupt (ResourceConsumer). */
    public static final int INT_CONSUMER = 1;
    /** Extended interrupt vector flags bit 1: edge-triggered (0 = level). */
    public static final int INT_EDGE = 1 << 1;
    /** Extended interrupt vector flags bit 2: active low (0 = active high). */
    public static final int INT_ACTIVE_LOW = 1 << 2;
    /** Extended interrupt vector flags bit 3: shared (0 = exclusive). */
    public static final int INT_SHARED = 1 << 3;

    /**
     * {@code IO(Decode16, min, max, alignment, length)}: I/O Port Descriptor (6.4.2.5), 8 bytes.
     *
     * @param min       lowest base address, 0..0xFFFF
     * @param max       highest base address
     * @param alignment base alignment, bytes (0..255)
     * @param length    number of ports, 0..255
     * @return the descriptor
     */
    public static byte[] io(int min, int max, int alignment, int length) {
        checkRange("IO alignment", alignment, 0xFF);
        checkRange("IO length", length, 0xFF);
        return concat(new byte[] {IO_TAG, 1}, word(min), word(max), new byte[] {(byte) alignment, (byte) length});
    }

    /**
     * {@code IRQNoFlags() { irq }}: the 2-byte IRQ Descriptor (6.4.2.1), 3 bytes: high-true, edge-sensitive,
     * not shareable, a mask with bit {@code irq} set.
     *
     * @param irq ISA IRQ 0..15
     * @return the descriptor
     */
    public static byte[] irqNoFlags(int irq) {
        checkRange("IRQ", irq, 15);
        return concat(new byte[] {IRQ_NO_FLAGS_TAG}, word(1 << irq));
    }

    /**
     * {@code Interrupt(ResourceConsumer, trigger, polarity, sharing) { gsis }}: the Extended Interrupt Descriptor
     * (6.4.3.6) without resource source, 5 + 4n bytes plus the 3-byte large header.
     *
     * @param flags interrupt vector flags: {@link #INT_CONSUMER}, {@link #INT_EDGE}, {@link #INT_ACTIVE_LOW},
     *              {@link #INT_SHARED}
     * @param gsis  the interrupt numbers (GSIs), 1..255 of them
     * @return the descriptor
     */
    public static byte[] interrupt(int flags, long... gsis) {
        if (gsis.length < 1 || gsis.length > 255) {
            throw new IllegalArgumentException("Interrupt descriptor with " + gsis.length + " interrupts (1..255)");
        }
        byte[] list = new byte[4 * gsis.length];
        for (int i = 0; i < gsis.length; i++) {
            System.arraycopy(le(gsis[i], 4), 0, list, 4 * i, 4);
        }
        return concat(new byte[] {(byte) EXTENDED_INTERRUPT_TAG}, word(2 + list.length),
                new byte[] {(byte) flags, (byte) gsis.length}, list);
    }

    /**
     * {@code Memory32Fixed(ReadWrite, base, length)}: 32-bit Fixed Memory Range Descriptor (6.4.3.4), 12 bytes.
     *
     * @param base   guest-physical base address
     * @param length bytes
     * @return the descriptor
     */
    public static byte[] memory32Fixed(long base, long length) {
        return concat(new byte[] {(byte) MEMORY32_FIXED_TAG}, word(9), new byte[] {1}, le(base, 4), le(length, 4));
    }

    /**
     * {@code WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, max - min + 1)}: Word
     * Address Space Descriptor (6.4.3.5.3) of resource type bus number, 16 bytes.
     *
     * @param min first bus number
     * @param max last bus number
     * @return the descriptor
     */
    public static byte[] wordBusNumber(int min, int max) {
        return wordAddress(BUS_NUMBER_RANGE, 0, min, max);
    }

    /**
     * {@code WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, max - min + 1)}:
     * Word Address Space Descriptor of resource type I/O, 16 bytes.
     *
     * @param min first port
     * @param max last port
     * @return the descriptor
     */
    public static byte[] wordIo(int min, int max) {
        return wordAddress(IO_RANGE, IO_ENTIRE_RANGE, min, max);
    }

    /**
     * {@code DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable|Cacheable, ReadWrite, 0, base,
     * base + length - 1, 0, length)}: DWord Address Space Descriptor (6.4.3.5.2) of resource type memory, 26 bytes.
     *
     * @param cacheable {@code Cacheable} (_MEM = 1) rather than {@code NonCacheable}
     * @param base      guest-physical base, below 4 GiB
     * @param length    bytes, greater than 0
     * @return the descriptor
     */
    public static byte[] dwordMemory(boolean cacheable, long base, long length) {
        checkWindow(base, length, 0xFFFF_FFFFL);
        int specific = cacheable ? MEMORY_READ_WRITE_CACHEABLE : MEMORY_READ_WRITE_NON_CACHEABLE;
        return concat(new byte[] {(byte) DWORD_ADDRESS_TAG}, word(23),
                new byte[] {MEMORY_RANGE, PRODUCER_FIXED, (byte) specific},
                le(0, 4), le(base, 4), le(base + length - 1, 4), le(0, 4), le(length, 4));
    }

    /**
     * {@code QWordMemory(...)} as {@link #dwordMemory} with 64-bit fields: QWord Address Space Descriptor
     * (6.4.3.5.1) of resource type memory, 46 bytes.
     *
     * @param cacheable {@code Cacheable} rather than {@code NonCacheable}
     * @param base      guest-physical base
     * @param length    bytes, greater than 0
     * @return the descriptor
     */
    public static byte[] qwordMemory(boolean cacheable, long base, long length) {
        checkWindow(base, length, -1L);
        int specific = cacheable ? MEMORY_READ_WRITE_CACHEABLE : MEMORY_READ_WRITE_NON_CACHEABLE;
        return concat(new byte[] {(byte) QWORD_ADDRESS_TAG}, word(43),
                new byte[] {MEMORY_RANGE, PRODUCER_FIXED, (byte) specific},
                le(0, 8), le(base, 8), le(base + length - 1, 8), le(0, 8), le(length, 8));
    }

    /**
     * {@code ResourceTemplate() { descriptors }}: a Buffer holding the descriptors and an End Tag (6.4.2.9) whose
     * checksum byte is 0, which "indicates that the checksum is to be treated as correct" and is what iasl writes.
     *
     * @param descriptors the encoded descriptors, in order
     * @return the encoded Buffer term
     */
    public static byte[] resourceTemplate(byte[]... descriptors) {
        return Aml.buffer(concat(concat(descriptors), new byte[] {END_TAG, 0}));
    }

    private static byte[] wordAddress(int type, int specific, int min, int max) {
        checkRange("word address minimum", min, 0xFFFF);
        checkRange("word address maximum", max, 0xFFFF);
        if (max < min) {
            throw new IllegalArgumentException(String.format("word address range 0x%X..0x%X is empty", min, max));
        }
        return concat(new byte[] {(byte) WORD_ADDRESS_TAG}, word(13), new byte[] {(byte) type, PRODUCER_FIXED, (byte) specific},
                word(0), word(min), word(max), word(0), word(max - min + 1));
    }

    private static void checkWindow(long base, long length, long limit) {
        if (length <= 0 || Long.compareUnsigned(base, limit) > 0 || Long.compareUnsigned(length - 1, limit - base) > 0) {
            throw new IllegalArgumentException(String.format("memory window 0x%X + 0x%X is empty or beyond 0x%X",
                    base, length, limit));
        }
    }

    private static void checkRange(String what, int value, int max) {
        if (value < 0 || value > max) {
            throw new IllegalArgumentException(what + " " + value + " is out of range 0.." + max);
        }
    }

    private static byte[] word(int value) {
        return le(value, 2);
    }
}
