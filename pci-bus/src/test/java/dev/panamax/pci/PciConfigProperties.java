package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.memory.X86Layout;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * Property-based tests (issue 15) over what a guest can do to PCI config space: random reads and writes of any
 * width at any offset through both configuration mechanisms (0xCF8/0xCFC and ECAM), and to the MSI-X table and
 * PBA of a function's BAR. Invariants after every sequence: nothing is thrown, read-only bytes never change, both
 * mechanisms read the same, BARs read back aligned to their size and still size correctly, absent functions read
 * all ones, and every BAR the bus maps is aligned. Tries: {@code jqwik.tries.default} (junit-platform.properties).
 */
class PciConfigProperties {
    static final int SLOT = 3;
    static final int MSIX_VECTORS = 8;
    static final long BAR0_SIZE = MsixCapability.dedicatedBarSize(MSIX_VECTORS);
    static final long BAR2_SIZE = 0x4000;
    static final long BAR4_SIZE = 0x20;

    /** One guest access. kind: 0 CONFIG_ADDRESS write, 1 CONFIG_DATA, 2 ECAM, 3 MSI-X BAR region. */
    record Op(int kind, boolean write, long offset, int size, long value) {
    }

    /** The machine under test: host bridge, a function with MSI, MSI-X and three BARs, mapped by a BusBarMapper. */
    static final class Rig {
        final PciBus bus = new PciBus(null);
        final Bus pio = new Bus("pio");
        final Bus mmio = new Bus("mmio");
        final PciFunction f = new PciFunction("fuzz", new PciConfigSpace(PciConfigSpace.SIZE));
        final MsixCapability msix;
        final BusDevice address = bus.configAddressPort();
        final BusDevice data = bus.configDataPort();
        final BusDevice ecam = bus.ecam();

        Rig() {
            f.config().initHeader(0x1AF4, 0x1234, 1, 0x010802, 0x1AF4, 0x0001);
            f.setInterruptPin(1);
            new MsiCapability(f, 4, true, new MsiTest.Recorder());
            msix = new MsixCapability(f, MSIX_VECTORS, 0, 0, MsixCapability.dedicatedPbaOffset(MSIX_VECTORS), new MsiTest.Recorder());
            f.setBar(0, PciBar.memory32(BAR0_SIZE), msix);
            f.setBar(2, PciBar.memory64(BAR2_SIZE, true), null);
            f.setBar(4, PciBar.io(BAR4_SIZE), null);
            f.addBarListener(new BusBarMapper(pio, mmio));
            f.addBarListener(new BarListener() {
                @Override
                public void barMapped(PciFunction fn, int index, PciBar bar, long at) {
                    assertEquals(0, at & (bar.size() - 1), "BAR " + index + " mapped misaligned at 0x" + Long.toHexString(at));
                }

                @Override
                public void barUnmapped(PciFunction fn, int index, PciBar bar, long at) {
                }
            });
            bus.attach(SLOT, 0, f);
            f.setBarAddress(0, 0xC000_0000L);
            f.setBarAddress(2, 0x1_0000_0000L);
            f.setBarAddress(4, 0xC000);
            f.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_IO);
        }

        void apply(Op op) {
            switch (op.kind()) {
                case 0 -> access(address, op, null);
                case 1 -> access(data, op, "CONFIG_DATA");
                case 2 -> access(ecam, op, "ECAM");
                default -> access(msix, op, null);
            }
        }

        /** {@code op} on {@code device}; a read is checked to fit the access's width where {@code checked} names it. */
        private static void access(BusDevice device, Op op, String checked) {
            if (op.write()) {
                device.write(op.offset(), op.size(), op.value());
            } else {
                long v = device.read(op.offset(), op.size());
                if (checked != null) {
                    assertTrue(op.size() == 8 || (v >>> (8 * op.size())) == 0, checked + " read wider than the access");
                }
            }
        }

        long portRead(int slot, int fn, int register, int size) {
            address.write(0, 4, PciBus.CONFIG_ENABLE | slot << 11 | fn << 8 | (register & 0xFC));
            return data.read(register & 3, size);
        }

        void portWrite(int slot, int fn, int register, int size, long value) {
            address.write(0, 4, PciBus.CONFIG_ENABLE | slot << 11 | fn << 8 | (register & 0xFC));
            data.write(register & 3, size, value);
        }

        long ecamRead(int slot, int fn, int register, int size) {
            return ecam.read((long) slot << 15 | fn << 12 | register, size);
        }
    }

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<Integer> size = Arbitraries.of(1, 2, 4);
        Arbitrary<Long> value = Arbitraries.oneOf(Arbitraries.longs(), Arbitraries.of(0L, 0xFFFF_FFFFL, -1L, 0x8000_0000L));
        Arbitrary<Integer> slot = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(3, Arbitraries.just(SLOT)), net.jqwik.api.Tuple.of(1, Arbitraries.just(0)),
                net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, 31)));
        Arbitrary<Integer> fn = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(4, Arbitraries.just(0)), net.jqwik.api.Tuple.of(1, Arbitraries.integers().between(0, 7)));
        // CONFIG_ADDRESS: usually a well-formed enable|bus 0|device|function|register; sometimes any dword or width.
        Arbitrary<Op> configAddress = Arbitraries.oneOf(
                Combinators.combine(slot, fn, Arbitraries.integers().between(0, 255), Arbitraries.of(0, 0, 0, 1))
                        .as((s, f, r, b) -> new Op(0, true, 0, 4,
                                Integer.toUnsignedLong(PciBus.CONFIG_ENABLE | b << 16 | s << 11 | f << 8 | r))),
                Combinators.combine(Arbitraries.longs().between(0, 3), size, value, Arbitraries.of(true, false))
                        .as((o, sz, v, w) -> new Op(0, w, o, sz, v)));
        Arbitrary<Op> configData = Combinators.combine(Arbitraries.longs().between(0, 3), size, value, Arbitraries.of(true, false))
                .as((o, sz, v, w) -> new Op(1, w, o, sz, v));
        Arbitrary<Long> ecamOffset = Arbitraries.oneOf(
                Combinators.combine(slot, fn, Arbitraries.integers().between(0, 4095))
                        .as((s, f, r) -> (long) s << 15 | (long) f << 12 | r),
                Arbitraries.longs().between(0, X86Layout.ECAM_SIZE - 1),
                Arbitraries.longs());
        Arbitrary<Op> ecamOp = Combinators.combine(ecamOffset, Arbitraries.of(1, 2, 4, 8), value, Arbitraries.of(true, false))
                .as((o, sz, v, w) -> new Op(2, w, o, sz, v));
        Arbitrary<Op> msixOp = Combinators.combine(Arbitraries.longs().between(0, BAR0_SIZE - 1), Arbitraries.of(1, 2, 4, 8),
                        value, Arbitraries.of(true, false))
                .as((o, sz, v, w) -> new Op(3, w, o, sz, v));
        Arbitrary<Op> op = Arbitraries.frequencyOf(
                net.jqwik.api.Tuple.of(2, configAddress), net.jqwik.api.Tuple.of(3, configData),
                net.jqwik.api.Tuple.of(4, ecamOp), net.jqwik.api.Tuple.of(1, msixOp));
        return op.list().ofMinSize(1).ofMaxSize(60);
    }

    @Property
    void configSpaceKeepsItsInvariants(@ForAll("ops") List<Op> ops) {
        var rig = new Rig();
        PciFunction[] functions = {rig.bus.hostBridge(), rig.f};
        byte[][] before = new byte[2][];
        for (int i = 0; i < 2; i++) {
            PciConfigSpace c = functions[i].config();
            before[i] = new byte[c.size()];
            for (int at = 0; at < c.size(); at++) {
                before[i][at] = (byte) c.get8(at);
            }
        }

        for (Op op : ops) {
            rig.apply(op);
        }

        // Read-only bytes (no RW bit) never change: ids, class, header type, capability ids and pointers, BAR flags.
        for (int i = 0; i < 2; i++) {
            PciConfigSpace c = functions[i].config();
            for (int at = 0; at < c.size(); at++) {
                if (c.writableMask(at, 1) == 0) {
                    assertEquals(before[i][at] & 0xFF, c.get8(at),
                            String.format("%s: read-only byte 0x%03x changed", functions[i].name(), at));
                }
            }
        }
        // Both mechanisms read the same dwords, and agree with the model.
        for (int at = 0; at < PciConfigSpace.SIZE; at += 4) {
            long port = rig.portRead(SLOT, 0, at, 4);
            assertEquals(port, rig.ecamRead(SLOT, 0, at, 4), String.format("0x%02x: ports and ECAM differ", at));
            assertEquals(port, Integer.toUnsignedLong(rig.f.configRead(at, 4)));
        }
        assertEquals(0x1AF4, rig.ecamRead(SLOT, 0, PciConfigSpace.VENDOR_ID, 2));
        assertEquals(0x8086, rig.portRead(0, 0, PciConfigSpace.VENDOR_ID, 2));
        // BARs read back aligned to their size, with their flags.
        long bar0 = rig.ecamRead(SLOT, 0, PciConfigSpace.BASE_ADDRESS_0, 4);
        assertEquals(0, bar0 & PciBar.MEM_MASK & (BAR0_SIZE - 1));
        assertEquals(PciBar.memory32(BAR0_SIZE).flags(), bar0 & 0xF);
        long bar2 = rig.ecamRead(SLOT, 0, PciConfigSpace.BASE_ADDRESS_0 + 8, 8);
        assertEquals(0, bar2 & PciBar.MEM_MASK & (BAR2_SIZE - 1));
        assertEquals(PciBar.memory64(BAR2_SIZE, true).flags(), bar2 & 0xF);
        long bar4 = rig.portRead(SLOT, 0, PciConfigSpace.BASE_ADDRESS_0 + 16, 4);
        assertEquals(0, bar4 & PciBar.IO_MASK & (BAR4_SIZE - 1));
        assertEquals(PciBar.SPACE_IO, bar4 & 3);
        for (int i : new int[] {0, 2, 4}) {
            long d = rig.f.decodedAddress(i);
            assertTrue(d == -1 || (d & (rig.f.bar(i).size() - 1)) == 0, "BAR " + i + " decodes misaligned");
        }
        // Absent functions read all ones, through both mechanisms, and drop writes.
        for (int[] absent : new int[][] {{SLOT, 1}, {5, 0}, {31, 7}}) {
            rig.portWrite(absent[0], absent[1], 0, 4, 0);
            assertEquals(0xFFFF_FFFFL, rig.portRead(absent[0], absent[1], 0, 4));
            assertEquals(0xFFFFL, rig.portRead(absent[0], absent[1], 2, 2));
            assertEquals(0xFFFF_FFFFL, rig.ecamRead(absent[0], absent[1], 0x40, 4));
            assertEquals(0xFFL, rig.ecamRead(absent[0], absent[1], 0xFFF, 1));
        }
        // A fresh sizing sequence still gives each BAR's size (Linux's __pci_read_base).
        rig.portWrite(SLOT, 0, PciConfigSpace.COMMAND, 2, 0);
        assertEquals(BAR0_SIZE, sizeOf(rig, 0, Integer.toUnsignedLong(PciBar.MEM_MASK)));
        assertEquals(BAR4_SIZE, sizeOf(rig, 4, PciBar.IO_MASK & 0xFFFF));
        int low = PciConfigSpace.BASE_ADDRESS_0 + 8;
        rig.portWrite(SLOT, 0, low, 4, 0xFFFF_FFFFL);
        rig.portWrite(SLOT, 0, low + 4, 4, 0xFFFF_FFFFL);
        long size64 = rig.portRead(SLOT, 0, low, 4) & PciBar.MEM_MASK | rig.portRead(SLOT, 0, low + 4, 4) << 32;
        assertEquals(BAR2_SIZE, -size64);
        // MSI-X: the table size stays what the device has; the vector control keeps only its mask bit.
        int msixFlags = (int) rig.portRead(SLOT, 0, rig.msix.offset() + MsixCapability.FLAGS, 2);
        assertEquals(MSIX_VECTORS - 1, msixFlags & MsixCapability.FLAGS_QSIZE);
        for (int v = 0; v < MSIX_VECTORS; v++) {
            long ctrl = rig.msix.read((long) v * MsixCapability.ENTRY_SIZE + MsixCapability.ENTRY_VECTOR_CTRL, 4);
            assertEquals(0, ctrl & ~MsixCapability.ENTRY_CTRL_MASKBIT, "MSI-X vector control has reserved bits");
        }
    }

    /** Writes all ones to BAR {@code index} through the ports and returns the size its read-back gives. */
    private static long sizeOf(Rig rig, int index, long mask) {
        int at = PciConfigSpace.BASE_ADDRESS_0 + 4 * index;
        rig.portWrite(SLOT, 0, at, 4, 0xFFFF_FFFFL);
        long v = rig.portRead(SLOT, 0, at, 4) & mask;
        return (~v + 1) & mask;
    }
}
