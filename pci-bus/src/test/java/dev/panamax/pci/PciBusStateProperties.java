package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.core.state.StateException;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;

/** Property-based tests of {@link PciBus}'s snapshot: random config writes survive a save and restore; noise is refused. */
class PciBusStateProperties {
    record Write(int slot, int register, int size, int value) {
    }

    @Provide
    Arbitrary<List<Write>> writes() {
        return Combinators.combine(Arbitraries.of(0, 3), Arbitraries.integers().between(0, 0xFF), Arbitraries.of(1, 2, 4),
                Arbitraries.integers()).as((s, r, n, v) -> new Write(s, r & ~(n - 1), n, v)).list().ofMaxSize(60);
    }

    @Property
    void configWritesSurviveARestore(@ForAll("writes") List<Write> writes, @ForAll int latch) {
        var a = new PciBusStateTest.Rig();
        for (Write w : writes) {
            a.write(w.slot(), w.register(), w.size(), w.value());
        }
        a.address.write(0, 4, latch);
        byte[] saved = a.bus.saveState();
        int kept = (int) a.address.read(0, 4);
        var b = new PciBusStateTest.Rig();
        b.bus.restoreState(saved);
        assertEquals(kept, (int) b.address.read(0, 4));
        assertEquals(a.configDump(kept), b.configDump(kept));
        assertArrayEquals(a.bus.saveState(), b.bus.saveState());
    }

    @Property
    void noiseIsRefusedWithoutAChange(@ForAll @Size(max = 600) byte[] noise, @ForAll boolean overlay) {
        var b = new PciBusStateTest.Rig();
        byte[] before = b.bus.saveState();
        byte[] bad = noise;
        if (overlay) {
            bad = before.clone();
            for (int i = 0; i < noise.length; i++) {
                bad[(i * 31) % bad.length] ^= noise[i];
            }
        }
        try {
            b.bus.restoreState(bad);
        } catch (StateException refused) {
            assertArrayEquals(before, b.bus.saveState());
        }
    }
}
