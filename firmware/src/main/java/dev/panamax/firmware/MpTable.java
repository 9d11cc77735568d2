package dev.panamax.firmware;

import dev.panamax.core.memory.X86Layout;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Intel MultiProcessor Specification 1.4 tables (chapter 4, "MP Configuration Table"): the MP floating
 * pointer structure followed by the MP configuration table (header and base table entries), which tell
 * a guest kernel its CPUs, buses, I/O APIC and interrupt routing without ACPI.
 *
 * <p>Layout written by {@link #writeTo}: the 16-byte floating pointer at the given guest-physical address
 * (Linux scans 0xF0000..0xFFFFF for it, on 16-byte boundaries), the 44-byte configuration table header
 * right after it, then the entries, sorted by entry type as the spec orders them (processors, buses,
 * I/O APICs, I/O interrupt assignments, local interrupt assignments). All multi-byte fields little-endian.
 *
 * <p>{@link #standard(int)} builds the table Panamax gives a guest; the machine adds its PCI bus and that bus's
 * interrupt entries with {@link #withPciBus}.
 *
 * @param localApicAddress guest-physical address of the local APICs (0xFEE00000)
 * @param oemId            OEM ID, at most 8 ASCII characters (space-padded when written)
 * @param productId        product ID, at most 12 ASCII characters (space-padded when written)
 * @param entries          the base table entries; kept sorted by type (stable)
 */
public record MpTable(long localApicAddress, String oemId, String productId, List<Entry> entries) {
    /** Where Panamax puts the tables: the start of the BIOS area (e820 reserved). */
    public static final long ADDRESS = 0xF0000;
    /** Local APIC version reported for each processor (an integrated xAPIC, as Firecracker reports). */
    public static final int LOCAL_APIC_VERSION = 0x14;
    /** I/O APIC version (82093AA: 0x11). */
    public static final int IO_APIC_VERSION = 0x11;
    /** MP spec revision 1.4 is written as 4. */
    public static final int SPEC_REV = 4;
    /** Number of ISA IRQs routed to I/O APIC pins 0..15. */
    public static final int ISA_IRQS = 16;
    /** Most CPUs {@link #standard} accepts: APIC ids 0..cpus-1 and the I/O APIC id cpus must be below 0xFF. */
    public static final int MAX_CPUS = 254;

    /** "_MP_" as a little-endian u32. */
    static final int FLOATING_SIGNATURE = 0x5F504D5F;
    /** "PCMP" as a little-endian u32. */
    static final int CONFIG_SIGNATURE = 0x504D4350;
    /** Size of the floating pointer structure, bytes (one 16-byte paragraph). */
    public static final int FLOATING_SIZE = 16;
    /** Size of the configuration table header, bytes. */
    public static final int HEADER_SIZE = 44;

    /** Interrupt type (Table 4-10): a vectored interrupt from the I/O APIC. */
    public static final int INT = 0;
    /** Interrupt type: a non-maskable interrupt. */
    public static final int NMI = 1;
    /** Interrupt type: a system management interrupt. */
    public static final int SMI = 2;
    /** Interrupt type: a vectored interrupt from an external 8259A-compatible PIC. */
    public static final int EXTINT = 3;
    /** Interrupt flags (PO and EL both 00): polarity and trigger mode conform to the bus's. */
    public static final int CONFORMS = 0;
    /** I/O interrupt flags of a PCI INTx#: PO = 11 (active low), EL = 11 (level-triggered) (MP spec 4.3.4). */
    public static final int PCI_INTX_FLAGS = 0x3 | 0x3 << 2;

    /** One base configuration table entry (MP spec 4.3). */
    public sealed interface Entry permits Processor, Bus, IoApic, IoInterrupt, LocalInterrupt {
        /** @return the entry type code, the entry's first byte */
        int type();

        /** @return the entry's length in bytes */
        default int length() {
            return type() == 0 ? 20 : 8;
        }
    }

    /**
     * Processor entry, type 0, 20 bytes (MP spec 4.3.1).
     *
     * @param localApicId      the processor's local APIC id
     * @param localApicVersion bits 0..7 of the local APIC version register
     * @param enabled          CPU flags EN (the OS may use it)
     * @param bootstrap        CPU flags BP (the bootstrap processor)
     * @param signature        CPUID(1).EAX stepping/model/family, bits 0..11
     * @param features         CPUID(1).EDX feature flags
     */
    public record Processor(int localApicId, int localApicVersion, boolean enabled, boolean bootstrap,
                            int signature, int features) implements Entry {
        public int type() {
            return 0;
        }
    }

    /**
     * Bus entry, type 1, 8 bytes (MP spec 4.3.2).
     *
     * @param busId   the bus id, numbered from 0
     * @param busType the bus type string of Table 4-8, e.g. "ISA" or "PCI" (space-padded to 6 when written)
     */
    public record Bus(int busId, String busType) implements Entry {
        public Bus {
            if (busType.length() > 6) {
                throw new IllegalArgumentException("MP bus type '" + busType + "' is longer than 6 characters");
            }
            busType = busType.strip();
        }

        public int type() {
            return 1;
        }
    }

    /**
     * I/O APIC entry, type 2, 8 bytes (MP spec 4.3.3).
     *
     * @param ioApicId the I/O APIC id
     * @param version  bits 0..7 of the I/O APIC version register
     * @param enabled  flags EN
     * @param address  guest-physical base address of the I/O APIC
     */
    public record IoApic(int ioApicId, int version, boolean enabled, long address) implements Entry {
        public int type() {
            return 2;
        }
    }

    /**
     * A PCI interrupt source, as the machine reads it off its PCI bus for {@link #withPciBus}: device
     * {@code device}'s pin {@code pin} on PCI bus {@code bus} drives I/O APIC input {@code ioApicInput}.
     *
     * @param bus         the PCI bus number
     * @param device      the device number, 0..31
     * @param pin         1..4 for INTA#..INTD# (as the Interrupt Pin register numbers them)
     * @param ioApicInput the I/O APIC input (INTIN#, the GSI) the pin drives
     */
    public record InterruptSource(int bus, int device, int pin, int ioApicInput) {
    }

    /**
     * I/O interrupt assignment entry, type 3, 8 bytes (MP spec 4.3.4): a bus interrupt source wired to
     * an I/O APIC input pin.
     *
     * @param interruptType {@link #INT}, {@link #NMI}, {@link #SMI} or {@link #EXTINT}
     * @param flags         PO (bits 0..1) and EL (bits 2..3); {@link #CONFORMS} for the bus's defaults
     * @param sourceBusId   the bus id of the source
     * @param sourceBusIrq  the source: the IRQ number on ISA; on PCI, (device &lt;&lt; 2) | pin (0 = INTA#)
     * @param destIoApicId  the I/O APIC id it goes to
     * @param destIoApicPin the I/O APIC INTIN# pin
     */
    public record IoInterrupt(int interruptType, int flags, int sourceBusId, int sourceBusIrq,
                              int destIoApicId, int destIoApicPin) implements Entry {
        public int type() {
            return 3;
        }
    }

    /**
     * Local interrupt assignment entry, type 4, 8 bytes (MP spec 4.3.5): what drives a local APIC LINT pin.
     *
     * @param interruptType  {@link #INT}, {@link #NMI}, {@link #SMI} or {@link #EXTINT}
     * @param flags          PO (bits 0..1) and EL (bits 2..3)
     * @param sourceBusId    the bus id of the source
     * @param sourceBusIrq   the source's IRQ on that bus
     * @param destApicId     the local APIC id, 0xFF for all
     * @param destApicLint   the LINTIN# pin, 0 or 1
     */
    public record LocalInterrupt(int interruptType, int flags, int sourceBusId, int sourceBusIrq,
                                 int destApicId, int destApicLint) implements Entry {
        public int type() {
            return 4;
        }
    }

    /** @throws IllegalArgumentException if an ID string is too long or not ASCII */
    public MpTable {
        checkAscii("OEM ID", oemId, 8);
        checkAscii("product ID", productId, 12);
        entries = entries.stream().sorted(Comparator.comparingInt(Entry::type)).toList();
    }

    /**
     * The table Panamax gives a guest with {@code cpus} CPUs, as Firecracker builds it:
     * processors with APIC ids 0..cpus-1 (0 is the bootstrap processor, all enabled), bus 0 ISA,
     * one I/O APIC with id {@code cpus} at 0xFEC00000, ISA IRQ i to I/O APIC pin i for i in 0..15,
     * LINT0 as ExtINT (the 8259 PIC, to APIC 0) and LINT1 as NMI (to all APICs).
     *
     * @param cpus number of CPUs, 1..{@value #MAX_CPUS}
     * @return the table
     * @throws IllegalArgumentException if cpus is out of range
     */
    public static MpTable standard(int cpus) {
        if (cpus < 1 || cpus > MAX_CPUS) {
            throw new IllegalArgumentException("MP table: " + cpus + " CPUs is out of range 1.." + MAX_CPUS);
        }
        var list = new ArrayList<Entry>();
        for (int id = 0; id < cpus; id++) {
            // Signature family 6; features FPU (bit 0) and APIC (bit 9), as Firecracker.
            list.add(new Processor(id, LOCAL_APIC_VERSION, true, id == 0, 0x600, 0x201));
        }
        list.add(new Bus(0, "ISA"));
        int ioApicId = cpus;
        list.add(new IoApic(ioApicId, IO_APIC_VERSION, true, X86Layout.IOAPIC_BASE));
        for (int irq = 0; irq < ISA_IRQS; irq++) {
            list.add(new IoInterrupt(INT, CONFORMS, 0, irq, ioApicId, irq));
        }
        list.add(new LocalInterrupt(EXTINT, CONFORMS, 0, 0, 0, 0));
        list.add(new LocalInterrupt(NMI, CONFORMS, 0, 0, 0xFF, 1));
        return new MpTable(X86Layout.LAPIC_BASE, "PANAMAX", "PANAMAX VM", list);
    }

    /**
     * A copy of this table with PCI bus 0 added as MP bus 0, as kvmtool's {@code x86/mptable.c} numbers them: the
     * bus ids of this table's own entries move up by one (ISA becomes bus 1, its interrupt entries follow), then come
     * a bus entry "PCI" with id 0 and one I/O interrupt entry per source (source bus IRQ = (device &lt;&lt; 2) |
     * (pin - 1)), level-triggered active low ({@link #PCI_INTX_FLAGS}), to this table's I/O APIC ({@link #ioApicId}).
     * Linux looks a PCI interrupt up by MP bus id equal to the PCI bus number, hence bus 0 first.
     *
     * @param sources the PCI bus's INTx# wiring, one entry per device and pin
     * @throws IllegalArgumentException for a source on a bus other than 0, or a pin not 1..4
     */
    public MpTable withPciBus(List<InterruptSource> sources) {
        var list = new ArrayList<Entry>();
        for (Entry e : entries) {
            list.add(switch (e) {
                case Bus b -> new Bus(b.busId() + 1, b.busType());
                case IoInterrupt i -> new IoInterrupt(i.interruptType(), i.flags(), i.sourceBusId() + 1,
                        i.sourceBusIrq(), i.destIoApicId(), i.destIoApicPin());
                case LocalInterrupt l -> new LocalInterrupt(l.interruptType(), l.flags(),
                        l.sourceBusId() + 1, l.sourceBusIrq(), l.destApicId(), l.destApicLint());
                default -> e;
            });
        }
        list.add(new Bus(0, "PCI"));
        int ioApicId = ioApicId();
        for (InterruptSource source : sources) {
            if (source.bus() != 0 || source.pin() < 1 || source.pin() > 4) {
                throw new IllegalArgumentException("MP table: PCI interrupt source " + source
                        + " is not on bus 0 with a pin 1..4 (INTA#..INTD#)");
            }
            list.add(new IoInterrupt(INT, PCI_INTX_FLAGS, 0, source.device() << 2 | (source.pin() - 1), ioApicId,
                    source.ioApicInput()));
        }
        return new MpTable(localApicAddress, oemId, productId, list);
    }

    /**
     * @param more entries to add (e.g. a PCI bus and its interrupt assignments)
     * @return a table with these entries added, sorted by type
     */
    public MpTable with(Entry... more) {
        var list = new ArrayList<>(entries);
        list.addAll(List.of(more));
        return new MpTable(localApicAddress, oemId, productId, list);
    }

    /** @return the id of the first I/O APIC entry */
    public int ioApicId() {
        return entries.stream().filter(e -> e instanceof IoApic).map(e -> ((IoApic) e).ioApicId()).findFirst()
                .orElseThrow(() -> new IllegalStateException("MP table has no I/O APIC entry"));
    }

    /** @return the base table length: header plus entries, bytes */
    public int baseTableLength() {
        return HEADER_SIZE + entries.stream().mapToInt(Entry::length).sum();
    }

    /** @return total bytes {@link #writeTo} writes: floating pointer plus configuration table */
    public int size() {
        return FLOATING_SIZE + baseTableLength();
    }

    /**
     * Writes the floating pointer at {@code address} and the configuration table right after it.
     *
     * @param lowRam  guest memory, offset 0 = guest-physical 0
     * @param address guest-physical address, 16-byte aligned, below 4 GiB
     * @return the number of bytes written, {@link #size()}
     * @throws IllegalArgumentException if the address is misaligned or the tables do not fit
     */
    public int writeTo(MemorySegment lowRam, long address) {
        if (address % 16 != 0 || address + size() > Math.min(lowRam.byteSize(), 1L << 32)) {
            throw new IllegalArgumentException(String.format(
                    "MP table (%d bytes) cannot go at 0x%X in %d bytes of low RAM", size(), address, lowRam.byteSize()));
        }
        MemorySegment m = lowRam.asSlice(address, size());
        m.fill((byte) 0);
        long config = address + FLOATING_SIZE;

        // MP floating pointer structure (4.1).
        Le.put32(m, 0, FLOATING_SIGNATURE);
        Le.put32(m, 4, config);                  // PHYSICAL ADDRESS POINTER
        Le.put8(m, 8, 1);                        // LENGTH in 16-byte paragraphs
        Le.put8(m, 9, SPEC_REV);
        // Feature bytes 1..5 stay 0: a configuration table is present, IMCR absent (virtual wire mode).
        Le.put8(m, 10, -Le.sum8(m, 0, FLOATING_SIZE));

        // MP configuration table header (4.2).
        MemorySegment c = m.asSlice(FLOATING_SIZE);
        Le.put32(c, 0, CONFIG_SIGNATURE);
        Le.put16(c, 4, baseTableLength());
        Le.put8(c, 6, SPEC_REV);
        putAscii(c, 8, oemId, 8);
        putAscii(c, 16, productId, 12);
        // OEM table pointer (28) and size (32) stay 0: none.
        Le.put16(c, 34, entries.size());
        Le.put32(c, 36, localApicAddress);
        // Extended table length (40) and checksum (42) stay 0: none.

        long at = HEADER_SIZE;
        for (Entry e : entries) {
            writeEntry(c.asSlice(at, e.length()), e);
            at += e.length();
        }
        Le.put8(c, 7, -Le.sum8(c, 0, baseTableLength()));
        return size();
    }

    private static void writeEntry(MemorySegment m, Entry entry) {
        Le.put8(m, 0, entry.type());
        switch (entry) {
            case Processor p -> {
                Le.put8(m, 1, p.localApicId());
                Le.put8(m, 2, p.localApicVersion());
                Le.put8(m, 3, (p.enabled() ? 1 : 0) | (p.bootstrap() ? 2 : 0));
                Le.put32(m, 4, p.signature());
                Le.put32(m, 8, p.features());
            }
            case Bus b -> {
                Le.put8(m, 1, b.busId());
                putAscii(m, 2, b.busType(), 6);
            }
            case IoApic a -> {
                Le.put8(m, 1, a.ioApicId());
                Le.put8(m, 2, a.version());
                Le.put8(m, 3, a.enabled() ? 1 : 0);
                Le.put32(m, 4, a.address());
            }
            case IoInterrupt i -> putInterrupt(m, i.interruptType(), i.flags(), i.sourceBusId(), i.sourceBusIrq(),
                    i.destIoApicId(), i.destIoApicPin());
            case LocalInterrupt l -> putInterrupt(m, l.interruptType(), l.flags(), l.sourceBusId(), l.sourceBusIrq(),
                    l.destApicId(), l.destApicLint());
        }
    }

    private static void putInterrupt(MemorySegment m, int type, int flags, int bus, int irq, int dest, int pin) {
        Le.put8(m, 1, type);
        Le.put16(m, 2, flags);
        Le.put8(m, 4, bus);
        Le.put8(m, 5, irq);
        Le.put8(m, 6, dest);
        Le.put8(m, 7, pin);
    }

    /**
     * Reads back tables written by {@link #writeTo}, checking signatures and checksums.
     *
     * @param lowRam  guest memory, offset 0 = guest-physical 0
     * @param address guest-physical address of the floating pointer
     * @return the table found there
     * @throws IllegalArgumentException naming the first defect (signature, checksum, length, entry type)
     */
    public static MpTable readFrom(MemorySegment lowRam, long address) {
        MemorySegment f = lowRam.asSlice(address, FLOATING_SIZE);
        if (Le.u32(f, 0) != FLOATING_SIGNATURE) {
            throw new IllegalArgumentException(String.format("no _MP_ signature at 0x%X", address));
        }
        if (Le.sum8(f, 0, FLOATING_SIZE) != 0) {
            throw new IllegalArgumentException(String.format("MP floating pointer at 0x%X: bad checksum", address));
        }
        long config = Le.u32(f, 4);
        MemorySegment h = lowRam.asSlice(config, HEADER_SIZE);
        if (Le.u32(h, 0) != CONFIG_SIGNATURE) {
            throw new IllegalArgumentException(String.format("no PCMP signature at 0x%X", config));
        }
        int length = Le.u16(h, 4);
        MemorySegment c = lowRam.asSlice(config, length);
        if (Le.sum8(c, 0, length) != 0) {
            throw new IllegalArgumentException(String.format("MP configuration table at 0x%X: bad checksum", config));
        }
        int count = Le.u16(c, 34);
        var list = new ArrayList<Entry>();
        long at = HEADER_SIZE;
        for (int n = 0; n < count; n++) {
            int type = Le.u8(c, at);
            Entry e = switch (type) {
                case 0 -> new Processor(Le.u8(c, at + 1), Le.u8(c, at + 2), (Le.u8(c, at + 3) & 1) != 0,
                        (Le.u8(c, at + 3) & 2) != 0, (int) Le.u32(c, at + 4), (int) Le.u32(c, at + 8));
                case 1 -> new Bus(Le.u8(c, at + 1), getAscii(c, at + 2, 6));
                case 2 -> new IoApic(Le.u8(c, at + 1), Le.u8(c, at + 2), (Le.u8(c, at + 3) & 1) != 0, Le.u32(c, at + 4));
                case 3 -> new IoInterrupt(Le.u8(c, at + 1), Le.u16(c, at + 2), Le.u8(c, at + 4), Le.u8(c, at + 5),
                        Le.u8(c, at + 6), Le.u8(c, at + 7));
                case 4 -> new LocalInterrupt(Le.u8(c, at + 1), Le.u16(c, at + 2), Le.u8(c, at + 4), Le.u8(c, at + 5),
                        Le.u8(c, at + 6), Le.u8(c, at + 7));
                default -> throw new IllegalArgumentException(String.format(
                        "MP configuration table at 0x%X: unknown entry type %d at offset %d", config, type, at));
            };
            list.add(e);
            at += e.length();
        }
        if (at != length) {
            throw new IllegalArgumentException(String.format(
                    "MP configuration table at 0x%X: base table length %d, entries end at %d", config, length, at));
        }
        return new MpTable(Le.u32(c, 36), getAscii(c, 8, 8), getAscii(c, 16, 12), list);
    }

    private static void checkAscii(String what, String s, int max) {
        if (s.length() > max || !StandardCharsets.US_ASCII.newEncoder().canEncode(s)) {
            throw new IllegalArgumentException("MP " + what + " '" + s + "' is not at most " + max + " ASCII characters");
        }
    }

    private static void putAscii(MemorySegment m, long offset, String s, int width) {
        for (int i = 0; i < width; i++) {
            Le.put8(m, offset + i, i < s.length() ? s.charAt(i) : ' ');
        }
    }

    private static String getAscii(MemorySegment m, long offset, int width) {
        var sb = new StringBuilder();
        for (int i = 0; i < width; i++) {
            sb.append((char) Le.u8(m, offset + i));
        }
        return sb.toString().stripTrailing();
    }
}
