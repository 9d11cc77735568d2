package dev.panamax.vfiouser.client;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.DeviceMemoryRegion;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.sys.MemFd;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.VfioBarMapper;
import dev.panamax.vfio.VfioInterrupts;
import dev.panamax.vfio.VfioPciFunction;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserRegion;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Property-based tests (issue 15) over the BARs and the MSI-X table and PBA of an assigned device: a
 * {@link VfioPciFunction} over the real vfio-user client, talking over a real socketpair to the project's own
 * {@link VfioUserServer} serving a device with three BARs (32-bit memory, trapped; 64-bit prefetchable memory, a
 * memfd the client mmaps, holding the MSI-X table and PBA among other registers; I/O) and 20 MSI-X vectors. BAR 2
 * goes into a guest {@link AddressSpace} through {@link VfioBarMapper} (but for its MSI-X pages), and the interrupts
 * through {@link VfioInterrupts} to a recording {@link IrqRoutes} (there is no KVM here), which checks each call.
 *
 * <p>Each try is a random sequence of guest accesses of 1, 2, 4 and 8 bytes at any offset of any BAR (in range or
 * not, aligned or not, over the table, the PBA and the device's own registers) and of 1, 2 and 4 bytes to config
 * space (command register, BARs with all-ones and random values, MSI-X message control, anything). After every
 * access: nothing was thrown; reads fit their width; the table reads back what the guest wrote (PCI Local Bus 3.0,
 * 6.8.2.8-6.8.2.9: address and data read/write, vector control bit 0 the mask, bits 31:1 reserved and 0) and never
 * reached the device; the PBA reads 0 whatever was written; the command and message control registers read back
 * the guest's bits; every BAR keeps its type bits, is aligned to its size and decodes only inside its window, and
 * BAR 2's mapped pages are in the address space exactly while it decodes, where it decodes, never the MSI-X pages; a
 * vector has an irqfd iff MSI-X is enabled, the function is not masked and the entry is not masked, on a route with
 * the entry's message, with never more routes than vectors and none (only INTx's irqfd) while MSI-X is disabled.
 * After the sequence the device still works (IDs, BAR sizing, a register round trip through the server and through
 * the guest's mapping, MSI-X on and off) and every socket, memfd and eventfd is closed again.
 * Tries: {@code jqwik.tries.default} (junit-platform.properties); more with {@code -Djqwik.tries.default=N}.
 */
class AssignedDeviceProperties {
    static final int VENDOR = 0x4e58;
    static final int DEVICE = 0x0015;
    static final int VECTORS = 20;
    static final long BAR0_SIZE = 0x1000;
    static final long BAR2_SIZE = 0x4000;
    static final long BAR4_SIZE = 0x20;
    static final long TABLE = 0x1000;
    static final long PBA = 0x3000;
    static final int INTX_GSI = 10;
    static final long PAGE = 4096;
    static final long[] SIZES = {BAR0_SIZE, 0, BAR2_SIZE, 0, BAR4_SIZE, 0};
    static final int[] FLAGS = {PciBar.memory32(BAR0_SIZE).flags(), 0, PciBar.memory64(BAR2_SIZE, true).flags(), 0,
            PciBar.io(BAR4_SIZE).flags(), 0};

    /** One guest access. kind: 0 config, 1 BAR. */
    record Op(int kind, boolean write, int bar, long offset, int size, long value) {
    }

    /** The VM side: MSI routes and irqfds, with every call checked against what is in place. */
    static final class Routes implements IrqRoutes {
        final Map<Integer, long[]> routes = new HashMap<>();
        /** eventfd -> GSI, edge (MSI) irqfds. */
        final Map<Integer, Integer> irqfds = new HashMap<>();
        /** eventfd -> GSI, resample (INTx) irqfds. */
        final Map<Integer, Integer> resample = new HashMap<>();
        final List<String> violations = new ArrayList<>();
        int nextGsi = 24;
        int mostRoutes;

        @Override
        public synchronized int addMsiRoute(long address, int data) {
            routes.put(nextGsi, new long[] {address, data});
            mostRoutes = Math.max(mostRoutes, routes.size());
            return nextGsi++;
        }

        @Override
        public synchronized void updateMsiRoute(int gsi, long address, int data) {
            if (routes.replace(gsi, new long[] {address, data}) == null) {
                violations.add("update of GSI " + gsi + ", which has no route");
            }
        }

        @Override
        public synchronized void removeMsiRoute(int gsi) {
            if (irqfds.containsValue(gsi)) {
                violations.add("GSI " + gsi + " removed with an irqfd still bound");
            }
            if (routes.remove(gsi) == null) {
                violations.add("removal of GSI " + gsi + ", which has no route");
            }
        }

        @Override
        public synchronized void bindIrqfd(int eventFd, int gsi) {
            if (!routes.containsKey(gsi)) {
                violations.add("irqfd bound to GSI " + gsi + ", which has no route");
            }
            if (irqfds.containsKey(eventFd) || resample.containsKey(eventFd) || irqfds.containsValue(gsi)) {
                violations.add("fd " + eventFd + " or GSI " + gsi + " bound twice");
            }
            irqfds.put(eventFd, gsi);
        }

        @Override
        public synchronized void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
            if (irqfds.containsKey(eventFd) || resample.containsKey(eventFd) || resample.containsValue(gsi)) {
                violations.add("resample fd " + eventFd + " or GSI " + gsi + " bound twice");
            }
            resample.put(eventFd, gsi);
        }

        @Override
        public synchronized void unbindIrqfd(int eventFd, int gsi) {
            Integer was = irqfds.containsKey(eventFd) ? irqfds.remove(eventFd) : resample.remove(eventFd);
            if (was == null || was != gsi) {
                violations.add("unbind of fd " + eventFd + " from GSI " + gsi + ", bound to " + was);
            }
        }
    }

    /** A device register file: bytes that read back what was written. */
    static final class Registers implements RegionHandler {
        final byte[] bytes;

        Registers(long size) {
            bytes = new byte[(int) size];
        }

        @Override
        public synchronized void read(long offset, byte[] into) {
            System.arraycopy(bytes, (int) offset, into, 0, into.length);
        }

        @Override
        public synchronized void write(long offset, byte[] data) {
            System.arraycopy(data, 0, bytes, (int) offset, data.length);
        }

        synchronized int get32(int at) {
            return (bytes[at] & 0xFF) | (bytes[at + 1] & 0xFF) << 8 | (bytes[at + 2] & 0xFF) << 16 | (bytes[at + 3] & 0xFF) << 24;
        }
    }

    /** The server's device, the client, the assigned function over it, its interrupts and the model of what the guest wrote. */
    static final class Rig implements AutoCloseable {
        final List<String> fdsBefore = Fds.open();
        final Registers bar0 = new Registers(BAR0_SIZE);
        /** BAR 2 is memory the client may mmap, but for the MSI-X pages. */
        final MemFd bar2 = new MemFd("bar2", BAR2_SIZE);
        final AddressSpace space = new AddressSpace();
        final VfioBarMapper mapper;
        final Registers bar4 = new Registers(BAR4_SIZE);
        final MsixCapability serverMsix;
        final VfioUserServer server;
        final VfioUserClient client;
        final Routes routes = new Routes();
        final VfioInterrupts irqs;
        final VfioPciFunction f;
        /** BAR index -> where the BarListeners were told it decodes. */
        final Map<Integer, Long> decoded = new HashMap<>();
        final List<String> barViolations = new ArrayList<>();
        final int cap;
        /** What the guest wrote to the table, four dwords an entry, as the spec says it reads back. */
        final int[] table = new int[VECTORS * 4];
        int command;
        boolean enabled;
        boolean functionMasked;
        /** Whether the pin is connected (INTx on while MSI-X is off). */
        final boolean intx;

        Rig(boolean intx) {
            this.intx = intx;
            PciFunction fn = VfioUserDevice.pciFunction("prop", VENDOR, DEVICE, 0x018000, 1);
            fn.setInterruptPin(1);
            fn.setBar(0, PciBar.memory32(BAR0_SIZE), null);
            fn.setBar(2, PciBar.memory64(BAR2_SIZE, true), null);
            fn.setBar(4, PciBar.io(BAR4_SIZE), null);
            serverMsix = new MsixCapability(fn, VECTORS, 2, TABLE, PBA, new MsiListener() {
                @Override
                public void onVectorChanged(int vector, long address, int data, boolean masked) {
                }

                @Override
                public void onMessage(int vector, long address, int data) {
                }
            });
            cap = serverMsix.offset();
            VfioUserDevice device = VfioUserDevice.builder(fn)
                    .bar(0, bar0).region(VfioUserRegion.memfd(2, bar2)).bar(4, bar4)
                    .irqs(vfio_h.VFIO_PCI_INTX_IRQ_INDEX(), 1)
                    .irqs(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), VECTORS)
                    .build();
            UnixSocket[] pair = UnixSocket.pair();
            server = new VfioUserServer(pair[1], device);
            server.start();
            client = VfioUserClient.over(pair[0], "properties", VfioUserClient.Options.defaults());
            irqs = new VfioInterrupts(client, routes);
            f = new VfioPciFunction(client, irqs);
            irqs.attach(f);
            mapper = new VfioBarMapper(f, space, PAGE);
            f.addBarListener(new BarListener() {
                @Override
                public void barMapped(PciFunction fn, int index, PciBar bar, long at) {
                    if (decoded.put(index, at) != null) {
                        barViolations.add("BAR " + index + " mapped twice");
                    }
                }

                @Override
                public void barUnmapped(PciFunction fn, int index, PciBar bar, long at) {
                    Long was = decoded.remove(index);
                    if (was == null || was != at) {
                        barViolations.add("BAR " + index + " unmapped at 0x" + Long.toHexString(at) + ", mapped at " + was);
                    }
                }
            });
            if (intx) {
                irqs.connectIntx(INTX_GSI);
            }
            // As firmware leaves it.
            f.setBarAddress(0, 0xC000_0000L);
            f.setBarAddress(2, 0x8_0000_0000L);
            f.setBarAddress(4, 0xC000);
            f.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_IO | PciConfigSpace.COMMAND_MEMORY);
            modelConfigWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_IO | PciConfigSpace.COMMAND_MEMORY);
            for (int v = 0; v < VECTORS; v++) {
                table[4 * v + 3] = MsixCapability.ENTRY_CTRL_MASKBIT;
            }
        }

        int bar2Byte(long at) {
            return bar2.mapping().get(ValueLayout.JAVA_BYTE, at) & 0xFF;
        }

        void apply(Op op) {
            if (op.kind() == 0) {
                int value = (int) op.value();
                if (op.write()) {
                    f.configWrite((int) op.offset(), op.size(), value);
                    modelConfigWrite((int) op.offset(), op.size(), value);
                } else {
                    long v = Integer.toUnsignedLong(f.configRead((int) op.offset(), op.size()));
                    assertTrue(op.size() == 4 || v >>> (8 * op.size()) == 0, "config read wider than the access: " + op);
                }
            } else if (op.write()) {
                f.region(op.bar()).write(op.offset(), op.size(), op.value());
                if (op.bar() == 2 && inside(op)) {
                    modelTableWrite(op.offset(), op.size(), op.value());
                }
            } else {
                long v = f.region(op.bar()).read(op.offset(), op.size());
                assertTrue(op.size() == 8 || v >>> (8 * op.size()) == 0, "BAR read wider than the access: " + op);
                if (!inside(op)) {
                    assertEquals(op.size() == 8 ? -1L : (1L << (8 * op.size())) - 1, v, "a read across the BAR's end is all ones: " + op);
                }
            }
        }

        /** A BAR access the bus can dispatch: its first byte in the BAR, its last maybe past the end. */
        static boolean inside(Op op) {
            return op.offset() >= 0 && op.offset() <= SIZES[op.bar()] - op.size();
        }

        void modelConfigWrite(int offset, int size, int value) {
            if (offset < 0 || offset + size > PciConfigSpace.SIZE) {
                return;
            }
            for (int i = 0; i < size; i++) {
                int b = value >>> (8 * i) & 0xFF;
                if (offset + i == PciConfigSpace.COMMAND) {
                    command = b & (PciConfigSpace.COMMAND_IO | PciConfigSpace.COMMAND_MEMORY);
                } else if (offset + i == cap + MsixCapability.FLAGS + 1) {
                    enabled = (b & MsixCapability.FLAGS_ENABLE >>> 8) != 0;
                    functionMasked = (b & MsixCapability.FLAGS_MASKALL >>> 8) != 0;
                }
            }
        }

        /** PCI Local Bus 3.0, 6.8.2.8-9: address and data read/write; vector control: bit 0 the mask, bits 31:1 reserved (0). */
        void modelTableWrite(long offset, int size, long value) {
            for (int i = 0; i < size; i++) {
                long at = offset + i;
                if (at < TABLE || at >= TABLE + 16L * VECTORS) {
                    continue;
                }
                int word = (int) ((at - TABLE) / 4);
                int shift = (int) ((at - TABLE) % 4) * 8;
                int b = (int) (value >>> (8 * i)) & 0xFF;
                if (word % 4 == 3) {
                    b = shift == 0 ? b & MsixCapability.ENTRY_CTRL_MASKBIT : 0;
                }
                table[word] = table[word] & ~(0xFF << shift) | b << shift;
            }
        }

        /** Everything that must hold after any guest access. */
        void check(Object after) {
            String where = " after " + after;
            // The table reads back the model; the PBA reads 0; the device's own table never saw the guest.
            for (int w = 0; w < VECTORS * 4; w++) {
                assertEquals(Integer.toUnsignedLong(table[w]), f.region(2).read(TABLE + 4L * w, 4),
                        "table dword " + w + where);
            }
            for (long at = TABLE; at < TABLE + 16L * VECTORS; at++) {
                assertEquals(0, bar2Byte(at), "the device's table changed" + where);
            }
            assertEquals(0, f.region(2).read(PBA, 8), "PBA" + where);
            // Message control and command read back the guest's bits.
            int control = (VECTORS - 1) | (enabled ? MsixCapability.FLAGS_ENABLE : 0) | (functionMasked ? MsixCapability.FLAGS_MASKALL : 0);
            assertEquals(control, f.configRead(cap + MsixCapability.FLAGS, 2), "MSI-X message control" + where);
            assertEquals(enabled, f.msix().enabled());
            assertEquals(functionMasked, f.msix().functionMasked());
            assertEquals(command, f.configRead(PciConfigSpace.COMMAND, 2) & 3, "command" + where);
            checkBars(where);
            checkRoutes(where);
        }

        void checkBars(String where) {
            assertEquals(List.of(), barViolations, "BAR listener" + where);
            for (int i = 0; i < PciFunction.BAR_COUNT; i++) {
                long low = Integer.toUnsignedLong(f.configRead(PciConfigSpace.BASE_ADDRESS_0 + 4 * i, 4));
                if (i == 3) {
                    continue; // BAR 2's upper half
                }
                if (SIZES[i] == 0) {
                    assertEquals(0, low, "absent BAR " + i + where);
                    continue;
                }
                boolean io = i == 4;
                assertEquals(FLAGS[i], low & (io ? 0x3 : 0xF), "BAR " + i + " type bits" + where);
                long address = low & (io ? 0xFFFF_FFFCL : 0xFFFF_FFF0L);
                if (i == 2) {
                    address |= Integer.toUnsignedLong(f.configRead(PciConfigSpace.BASE_ADDRESS_0 + 12, 4)) << 32;
                }
                assertEquals(0, address & (SIZES[i] - 1), "BAR " + i + " aligned to its size" + where);
                assertEquals(address, f.barAddress(i));
                long at = f.decodedAddress(i);
                assertEquals(at == -1 ? null : at, decoded.get(i), "BAR " + i + ": the listeners know where it decodes" + where);
                if (at != -1) {
                    assertEquals(address, at);
                    assertTrue((command & (io ? PciConfigSpace.COMMAND_IO : PciConfigSpace.COMMAND_MEMORY)) != 0,
                            "BAR " + i + " decodes with its space off" + where);
                    long last = at + SIZES[i] - 1;
                    long window = io ? 0xFFFF : i == 0 ? 0xFFFF_FFFEL : -1;
                    assertTrue(at != 0 && Long.compareUnsigned(last, at) > 0 && Long.compareUnsigned(last, window) <= 0,
                            "BAR " + i + " decodes outside its window at 0x" + Long.toHexString(at) + where);
                }
            }
            assertEquals(0, f.configRead(PciConfigSpace.ROM_ADDRESS, 4), "no ROM" + where);
            // BAR 2 is in the guest's address space, but for the MSI-X pages, exactly while it decodes.
            assertEquals(List.of(new Area(0, PAGE), new Area(2 * PAGE, PAGE)), mapper.mappedAreas(2));
            long at = f.decodedAddress(2);
            List<String> want = new ArrayList<>();
            if (at != -1) {
                for (Area a : mapper.mappedAreas(2)) {
                    want.add(Long.toHexString(at + a.offset()) + "+" + Long.toHexString(a.size()));
                }
            }
            List<String> got = new ArrayList<>();
            for (MemoryRegion m : space.regions()) {
                got.add(Long.toHexString(m.guestPhysicalAddress()) + "+" + Long.toHexString(m.size()));
            }
            want.sort(null);
            got.sort(null);
            assertEquals(want, got, "BAR 2 in the address space" + where);
        }

        void checkRoutes(String where) {
            synchronized (routes) {
                assertEquals(List.of(), routes.violations, "IrqRoutes calls" + where);
                assertTrue(routes.routes.size() <= VECTORS && routes.mostRoutes <= VECTORS,
                        routes.mostRoutes + " routes for " + VECTORS + " vectors" + where);
                List<String> want = new ArrayList<>();
                for (int v = 0; v < VECTORS; v++) {
                    if (enabled && !functionMasked && (table[4 * v + 3] & 1) == 0) {
                        long address = Integer.toUnsignedLong(table[4 * v]) | Integer.toUnsignedLong(table[4 * v + 1]) << 32;
                        want.add(Long.toHexString(address) + "/" + Integer.toHexString(table[4 * v + 2]));
                    }
                }
                List<String> got = new ArrayList<>();
                for (int gsi : routes.irqfds.values()) {
                    long[] m = routes.routes.get(gsi);
                    got.add(Long.toHexString(m[0]) + "/" + Integer.toHexString((int) m[1]));
                }
                want.sort(null);
                got.sort(null);
                assertEquals(want, got, "irqfds (message per unmasked vector)" + where);
                if (!enabled) {
                    assertEquals(Map.of(), routes.routes, "routes while MSI-X is disabled" + where);
                    assertEquals(intx ? List.of(INTX_GSI) : List.of(), List.copyOf(routes.resample.values()),
                            "INTx while MSI-X is disabled" + where);
                    assertEquals(intx ? VfioInterrupts.Mode.INTX : VfioInterrupts.Mode.NONE, irqs.mode());
                } else {
                    assertEquals(Map.of(), routes.resample, "INTx while MSI-X is enabled" + where);
                    assertEquals(VfioInterrupts.Mode.MSIX, irqs.mode());
                }
            }
        }

        @Override
        public void close() throws Exception {
            mapper.close();
            assertEquals(List.of(), space.regions(), "address space after close");
            irqs.close();
            synchronized (routes) {
                assertEquals(List.of(), routes.violations);
                assertEquals(Map.of(), routes.routes, "routes after close");
                assertEquals(Map.of(), routes.irqfds, "irqfds after close");
                assertEquals(Map.of(), routes.resample, "INTx irqfd after close");
            }
            client.close();
            assertTrue(server.awaitDisconnect(Duration.ofSeconds(5)), "the server saw the client go");
            server.close();
            bar2.close();
            // Threads that end after close() (the server's INTx unmask watcher) may close their fd a moment later.
            for (int i = 0; i < 100 && !Fds.open().equals(fdsBefore); i++) {
                Thread.sleep(20);
            }
            assertEquals(fdsBefore, Fds.open(), "sockets and eventfds after close");
        }
    }

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<Long> anyValue = Arbitraries.oneOf(Arbitraries.longs(), Arbitraries.of(0L, -1L, 0xFFFF_FFFFL, 1L));
        Arbitrary<Boolean> write = Arbitraries.of(true, true, false);
        Arbitrary<Integer> width = Arbitraries.of(1, 2, 4, 8);
        Arbitrary<Integer> configWidth = Arbitraries.of(1, 2, 4);
        int cap = 0x40; // where pci-bus puts the server's first capability; checked in the property
        // Config space: anything, the command register, the BARs and ROM (all-ones or random), MSI-X control.
        Arbitrary<Integer> configOffset = Arbitraries.frequencyOf(
                Tuple.of(2, Arbitraries.integers().between(-4, PciConfigSpace.SIZE + 4)),
                Tuple.of(1, Arbitraries.of(PciConfigSpace.COMMAND, PciConfigSpace.COMMAND + 1, PciConfigSpace.ROM_ADDRESS)),
                Tuple.of(3, Arbitraries.integers().between(0, 5).map(i -> PciConfigSpace.BASE_ADDRESS_0 + 4 * i)),
                Tuple.of(1, Arbitraries.integers().between(PciConfigSpace.BASE_ADDRESS_0, PciConfigSpace.BASE_ADDRESS_0 + 24)),
                Tuple.of(2, Arbitraries.integers().between(cap, cap + 11)));
        Arbitrary<Long> configValue = Arbitraries.oneOf(anyValue,
                Arbitraries.of(0x8000L, 0xC000L, 0x4000L, 0x80L, 0xC0L, 0x40L, 0x8000_0000L, 0x8000_0000L | 0x0006L, 0x7L, 0x3L),
                Arbitraries.of(0xC000_0000L, 0xC000_1000L, 0xE000_0000L, 0xC000L, 0xC020L, 0xFFF0L, 0xFFFF_FFFCL, 0x1L));
        Arbitrary<Op> config = Combinators.combine(write, configOffset, configWidth, configValue)
                .as((w, o, s, v) -> new Op(0, w, 0, o, s, v));
        Arbitrary<Op> control = Combinators.combine(Arbitraries.of(0L, 0x8000L, 0x8000L, 0x8000L, 0xC000L, 0x4000L), Arbitraries.of(1, 2, 4))
                .as((v, s) -> s == 1 ? new Op(0, true, 0, cap + 3, 1, v >>> 8)
                        : s == 2 ? new Op(0, true, 0, cap + 2, 2, v) : new Op(0, true, 0, cap, 4, v << 16));
        // BARs: any offset of any BAR (in range and not), the table, the PBA, a qword or dword of an entry.
        Arbitrary<Integer> bar = Arbitraries.of(0, 2, 2, 4);
        Arbitrary<Op> anyBar = Combinators.combine(write, bar, Arbitraries.longs().between(-16, BAR2_SIZE + 16), width, anyValue)
                .as((w, b, o, s, v) -> new Op(1, w, b, b == 2 ? o : Math.floorMod(o, SIZES[b] + 16) - 8, s, v));
        Arbitrary<Op> wild = Combinators.combine(write, bar, Arbitraries.longs(), width, anyValue)
                .as((w, b, o, s, v) -> new Op(1, w, b, o, s, v));
        Arbitrary<Long> message = Arbitraries.oneOf(anyValue,
                Arbitraries.integers().between(0, 255).map(id -> 0xFEE0_0000L | (long) id << 12),
                Arbitraries.integers().between(0, 0xFFFF).map(d -> (long) d), Arbitraries.of(0L, 1L, 0xFFFF_FFFEL));
        Arbitrary<Op> entry = Combinators.combine(write, Arbitraries.integers().between(0, 4 * VECTORS + 1),
                        Arbitraries.of(4, 4, 8, 2, 1), Arbitraries.integers().between(0, 3), message)
                .as((w, dword, s, skew, v) -> new Op(1, w, 2, TABLE + 4L * dword + (skew == 0 ? 0 : skew % s), s, v));
        // Vector control of an entry: mask or unmask, as a driver does (a dword, or the qword of data and control).
        Arbitrary<Op> mask = Combinators.combine(Arbitraries.integers().between(0, VECTORS - 1), Arbitraries.of(0L, 1L),
                        Arbitraries.of(4, 8), Arbitraries.integers())
                .as((v, m, s, data) -> s == 4 ? new Op(1, true, 2, TABLE + 16L * v + 12, 4, m)
                        : new Op(1, true, 2, TABLE + 16L * v + 8, 8, m << 32 | Integer.toUnsignedLong(data)));
        Arbitrary<Op> pba = Combinators.combine(write, Arbitraries.longs().between(-8, 16), width, anyValue)
                .as((w, o, s, v) -> new Op(1, w, 2, PBA + o, s, v));
        Arbitrary<Op> op = Arbitraries.frequencyOf(
                Tuple.of(4, config), Tuple.of(3, control), Tuple.of(4, anyBar), Tuple.of(1, wild),
                Tuple.of(6, entry), Tuple.of(4, mask), Tuple.of(1, pba));
        return op.list().ofMinSize(1).ofMaxSize(80);
    }

    /**
     * INTx connected in one try of four: the server stops its INTx unmask watcher within its 100 ms poll each time
     * MSI-X goes on, which would make every try slow.
     */
    @Provide
    Arbitrary<Boolean> intx() {
        return Arbitraries.frequency(Tuple.of(1, true), Tuple.of(3, false));
    }

    @Property
    void barsAndMsixKeepTheirInvariants(@ForAll("ops") List<Op> ops, @ForAll("intx") boolean intx, @ForAll int probe)
            throws Exception {
        try (Rig rig = new Rig(intx)) {
            assertEquals(0x40, rig.cap, "the generators assume MSI-X at 0x40");
            rig.check("set-up");
            int mostIrqfds = 0;
            int moves = 0;
            for (Op op : ops) {
                rig.apply(op);
                rig.check(op);
                mostIrqfds = Math.max(mostIrqfds, rig.routes.irqfds.size());
                moves += rig.f.decodedAddress(2) != 0x8_0000_0000L ? 1 : 0;
            }
            Statistics.label("accesses with BAR 2 moved or off").collect(moves == 0 ? "0" : moves < 10 ? "1-9" : "10+");
            Statistics.label("irqfds at most").collect(mostIrqfds == 0 ? "0" : mostIrqfds < 4 ? "1-3" : "4+");
            stillWorks(rig, probe);
            assertEquals(0, rig.client.postedWriteErrors(), "no guest write reached the device only to be refused");
        }
    }

    /** A fresh, known use of everything after the guest's sequence: IDs, BAR sizing, registers, MSI-X. */
    static void stillWorks(Rig rig, int probe) {
        VfioPciFunction f = rig.f;
        assertEquals(DEVICE << 16 | VENDOR, f.configRead(PciConfigSpace.VENDOR_ID, 4), "IDs from the device");
        // BAR sizing: all-ones reads back the size mask with the type bits; the upper half of a 64-bit BAR too;
        // then the old address comes back.
        for (int i : new int[] {0, 2, 4, 1, 5}) {
            int at = PciConfigSpace.BASE_ADDRESS_0 + 4 * i;
            int low = f.configRead(at, 4);
            int high = i == 2 ? f.configRead(at + 4, 4) : 0;
            f.configWrite(at, 4, -1);
            if (i == 2) {
                f.configWrite(at + 4, 4, -1);
            }
            long mask = SIZES[i] == 0 ? 0 : ~(SIZES[i] - 1) & (i == 4 ? 0xFFFF_FFFCL : 0xFFFF_FFF0L);
            assertEquals(mask | FLAGS[i], Integer.toUnsignedLong(f.configRead(at, 4)), "BAR " + i + " sizing");
            assertEquals(-1L, rig.decoded.getOrDefault(i, -1L), "BAR " + i + " decodes while sized");
            if (i == 2) {
                assertEquals(-1, f.configRead(at + 4, 4), "BAR 2 upper half sizing");
                f.configWrite(at + 4, 4, high);
            }
            f.configWrite(at, 4, low);
            assertEquals(low, f.configRead(at, 4));
        }
        rig.check("sizing");
        // A register of BAR 0 and one of BAR 2 (outside the MSI-X structures) through the server.
        f.region(0).write(0x40, 4, Integer.toUnsignedLong(probe));
        assertEquals(Integer.toUnsignedLong(probe), f.region(0).read(0x40, 4), "BAR 0 register");
        assertEquals(probe, rig.bar0.get32(0x40), "BAR 0 register in the device");
        f.region(2).write(0x100, 4, Integer.toUnsignedLong(~probe));
        assertEquals(Integer.toUnsignedLong(~probe), f.region(2).read(0x100, 4), "BAR 2 register");
        assertEquals(~probe, rig.bar2.mapping().get(ValueLayout.JAVA_INT_UNALIGNED, 0x100), "BAR 2 register in the device");
        // ... and through the guest's mapping of BAR 2, when it decodes.
        long at = f.decodedAddress(2);
        if (at != -1) {
            MemoryRegion m = rig.space.find(at + 0x200);
            assertTrue(m instanceof DeviceMemoryRegion, "BAR 2 mapped into the guest: " + m);
            long value = Integer.toUnsignedLong(probe) * 31;
            ((DeviceMemoryRegion) m).host().asSlice(at + 0x200 - m.guestPhysicalAddress(), 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, value);
            assertEquals(value, f.region(2).read(0x200, 8), "a guest store through the mapping, read through the server");
        }
        // MSI-X on with vector 0 programmed and unmasked, then off.
        f.configWrite(rig.cap + MsixCapability.FLAGS, 2, MsixCapability.FLAGS_ENABLE);
        rig.modelConfigWrite(rig.cap + MsixCapability.FLAGS, 2, MsixCapability.FLAGS_ENABLE);
        long[] entry = {0xFEE0_0000L, 0, probe & 0xFFFFL, 0};
        for (int k = 0; k < 4; k++) {
            f.region(2).write(TABLE + 4L * k, 4, entry[k]);
            rig.modelTableWrite(TABLE + 4L * k, 4, entry[k]);
        }
        rig.check("vector 0 unmasked");
        assertTrue(rig.routes.irqfds.size() >= 1, "vector 0 has an irqfd");
        f.configWrite(rig.cap + MsixCapability.FLAGS, 2, 0);
        rig.modelConfigWrite(rig.cap + MsixCapability.FLAGS, 2, 0);
        rig.check("MSI-X disabled");
    }
}
