package dev.panamax.pci;

import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The snapshot of a {@link PciBus}: tag {@value #TAG}, version {@value #VERSION}, little-endian.
 *
 * <pre>
 *   le32 CONFIG_ADDRESS (bits 30..24 and 1..0 zero: as the latch keeps it)
 *   u8   count of occupied device/function numbers, then per one, in devfn order:
 *     u8 devfn (device &lt;&lt; 3 | function)   bytes name (le32 length, at most 64, UTF-8)
 *     u8 kind: 0 = state kept by the function's owner (e.g. an assigned device), 1 = emulated here, followed by
 *        {@link PciFunction#saveConfigState}: le16 config size, the config space, u8 INTx# level
 * </pre>
 *
 * Restoring checks everything first (the same functions at the same numbers, under the same names for the functions
 * emulated here, each config state against its function:
 * {@link PciFunction#readConfigState}) and only then sets CONFIG_ADDRESS and applies each function's state.
 */
final class PciBusState {
    static final String TAG = "PCI0";
    static final int VERSION = 1;
    private static final int MAX_NAME = 64;
    private static final int KIND_OWNER = 0, KIND_EMULATED = 1;

    private PciBusState() {
    }

    /** @return whether the bus saves {@code d}'s config space itself: the host bridge and plain emulated functions */
    static boolean emulatedHere(PciDevice d) {
        return d instanceof PciHostBridge || (d != null && d.getClass() == PciFunction.class);
    }

    static byte[] save(PciBus bus) {
        var w = new StateWriter(TAG, VERSION).u32(bus.configAddress());
        List<Integer> occupied = occupied(bus);
        w.u8(occupied.size());
        for (int devfn : occupied) {
            PciDevice d = bus.slot(devfn);
            w.u8(devfn).bytes(name(d));
            if (emulatedHere(d)) {
                w.u8(KIND_EMULATED);
                ((PciFunction) d).saveConfigState(w);
            } else {
                w.u8(KIND_OWNER);
            }
        }
        return w.toByteArray();
    }

    private record Entry(PciFunction function, PciFunction.SavedConfig config) {
    }

    static void restore(PciBus bus, byte[] state) {
        var r = new StateReader("pci", state, TAG, VERSION);
        int address = r.u32();
        if ((address & ~(PciBus.CONFIG_ENABLE | 0x00FF_FFFC)) != 0) {
            throw r.invalid(String.format("CONFIG_ADDRESS 0x%08x has reserved bits set", address));
        }
        List<Integer> occupied = occupied(bus);
        int count = r.u8();
        var entries = new ArrayList<Entry>();
        int previous = -1;
        for (int i = 0; i < count; i++) {
            int devfn = r.u8();
            String bdf = PciRegisterNames.bdf(0, devfn >>> 3, devfn & 7);
            byte[] name = r.bytes("name of " + bdf, MAX_NAME);
            String saved = new String(name, StandardCharsets.UTF_8);
            if (devfn <= previous) {
                throw r.invalid(bdf + " is out of order or repeated");
            }
            previous = devfn;
            PciDevice here = bus.slot(devfn);
            // An owner's function (an assigned device, named by its socket or host address) may come back under
            // another name: its owner checks its identity in its own state.
            if (here == null || (emulatedHere(here) && !Arrays.equals(name, name(here)))) {
                throw r.invalid(bdf + " holds " + saved + " in the snapshot, "
                        + (here == null ? "nothing" : here.name()) + " on this bus");
            }
            int kind = (int) r.check("kind of " + bdf, r.u8(), KIND_OWNER, KIND_EMULATED);
            if ((kind == KIND_EMULATED) != emulatedHere(here)) {
                throw r.invalid(bdf + " (" + saved + ") is " + (kind == KIND_EMULATED ? "" : "not ")
                        + "emulated by the bus in the snapshot, but not so here");
            }
            if (kind == KIND_EMULATED) {
                PciFunction f = (PciFunction) here;
                entries.add(new Entry(f, f.readConfigState(r)));
            }
        }
        r.end();
        if (count != occupied.size()) {
            throw r.invalid(count + " functions in the snapshot, " + occupied.size() + " on this bus");
        }
        bus.configAddress(address);
        for (Entry e : entries) {
            e.function().applyConfigState(e.config());
        }
    }

    private static List<Integer> occupied(PciBus bus) {
        var list = new ArrayList<Integer>();
        for (int devfn = 0; devfn < PciBus.DEVICES * PciBus.FUNCTIONS; devfn++) {
            if (bus.slot(devfn) != null) {
                list.add(devfn);
            }
        }
        return list;
    }

    private static byte[] name(PciDevice d) {
        byte[] n = d.name().getBytes(StandardCharsets.UTF_8);
        return n.length > MAX_NAME ? Arrays.copyOf(n, MAX_NAME) : n;
    }
}
