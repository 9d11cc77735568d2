package dev.panamax.devices;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateException;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/**
 * Property-based tests of the legacy devices' snapshots: random port accesses drive a model into some state, it is
 * saved and restored into a fresh model, and both then answer a second random sequence of accesses identically
 * (reads, interrupt transitions, transmitted bytes, callbacks). Arbitrary bytes restore or fail with
 * {@link StateException} only, leaving the model as it was.
 */
class DeviceStateProperties {
    record Access(int offset, int size, boolean write, long value) {
    }

    /** A model with what it did visible: interrupt transitions, transmitted bytes, callbacks. */
    record Rig(BusDevice device, List<String> events) {
        Snapshottable state() {
            return (Snapshottable) device;
        }
    }

    private static Arbitrary<List<Access>> accesses(int ports) {
        Arbitrary<Long> value = Arbitraries.oneOf(Arbitraries.longs().between(0, 0xFFFF_FFFFL),
                Arbitraries.longs().between(0, 0xFF),
                Arbitraries.of(0x01L, 0x02L, 0x03L, 0x0FL, 0x10L, 0x1FL, 0x20L, 0x60L, 0x80L, 0xAAL, 0xD2L, 0xD3L, 0x47L));
        return Combinators.combine(Arbitraries.integers().between(0, ports - 1), Arbitraries.of(1, 2, 4),
                Arbitraries.of(true, false), value).as(Access::new).list().ofMaxSize(60);
    }

    @Provide
    Arbitrary<List<Access>> uart() {
        return accesses(Serial16550.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> i8042() {
        return accesses(I8042.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> cmos() {
        return accesses(CmosRtc.PORT_COUNT);
    }

    @Provide
    Arbitrary<List<Access>> acpi() {
        // No writes of RESET_VALUE or SLP_EN matter here: the callbacks are recorded like any event.
        return accesses(AcpiPm.PORT_COUNT);
    }

    static Rig uartRig() {
        List<String> events = new ArrayList<>();
        return new Rig(new Serial16550(level -> events.add("irq " + level), b -> events.add("tx " + b)), events);
    }

    static Rig i8042Rig() {
        List<String> events = new ArrayList<>();
        return new Rig(new I8042(level -> events.add("irq1 " + level), level -> events.add("irq12 " + level),
                () -> events.add("reset")), events);
    }

    static Rig cmosRig() {
        return new Rig(new CmosRtc(Clock.fixed(Instant.parse("2025-06-01T12:34:56Z"), ZoneOffset.UTC)), new ArrayList<>());
    }

    static Rig acpiRig() {
        List<String> events = new ArrayList<>();
        return new Rig(new AcpiPm(() -> events.add("off"), () -> events.add("reset")), events);
    }

    /** Runs the accesses, recording every read value among the events. */
    static void run(Rig rig, List<Access> accesses) {
        for (Access a : accesses) {
            if (a.write()) {
                rig.device().write(a.offset(), a.size(), a.value());
            } else {
                rig.events().add("read " + a.offset() + " = " + rig.device().read(a.offset(), a.size()));
            }
        }
    }

    /** Drives a model with {@code before}, moves it into a fresh one, and checks both then behave alike on {@code after}. */
    static void roundTrip(Function<Void, Rig> make, List<Access> before, List<Access> after, byte[] received) {
        Rig a = make.apply(null);
        if (received != null) {
            ((Serial16550) a.device()).receive(received, received.length);
        }
        run(a, before);
        byte[] saved = a.state().saveState();
        Rig b = make.apply(null);
        b.state().restoreState(saved);
        assertArrayEquals(saved, b.state().saveState(), "restored state saves the same bytes");
        assertEquals(List.of(), b.events(), "restoring drives no line and calls nothing");
        a.events().clear();
        run(a, after);
        run(b, after);
        assertEquals(a.events(), b.events());
        assertArrayEquals(a.state().saveState(), b.state().saveState());
    }

    @Property
    void uartRestoredBehavesTheSame(@ForAll("uart") List<Access> before, @ForAll("uart") List<Access> after,
                                    @ForAll @Size(max = 12) byte[] received) {
        roundTrip(v -> uartRig(), before, after, received);
    }

    @Property
    void i8042RestoredBehavesTheSame(@ForAll("i8042") List<Access> before, @ForAll("i8042") List<Access> after) {
        roundTrip(v -> i8042Rig(), before, after, null);
    }

    @Property
    void cmosRestoredBehavesTheSame(@ForAll("cmos") List<Access> before, @ForAll("cmos") List<Access> after) {
        roundTrip(v -> cmosRig(), before, after, null);
    }

    @Property
    void acpiRestoredBehavesTheSame(@ForAll("acpi") List<Access> before, @ForAll("acpi") List<Access> after) {
        roundTrip(v -> acpiRig(), before, after, null);
    }

    /** A valid state with some bytes changed, or any bytes: restored, or refused with StateException and no change. */
    @Property
    void damagedStatesAreRefusedCleanly(@ForAll("uart") List<Access> before, @ForAll @Size(max = 40) byte[] noise,
                                        @ForAll boolean overlay) {
        for (Rig rig : List.of(uartRig(), i8042Rig(), cmosRig(), acpiRig())) {
            run(rig, before);
            byte[] good = rig.state().saveState();
            byte[] bad = noise;
            if (overlay) {
                bad = good.clone();
                for (int i = 0; i < noise.length && i < bad.length; i++) {
                    bad[(i * 7) % bad.length] ^= noise[i];
                }
            }
            try {
                rig.state().restoreState(bad);
            } catch (StateException refused) {
                assertArrayEquals(good, rig.state().saveState(), "a refused state leaves the model unchanged");
            }
        }
    }
}
