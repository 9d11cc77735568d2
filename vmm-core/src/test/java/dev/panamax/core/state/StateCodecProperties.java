package dev.panamax.core.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

/** Property-based tests of the state codec: round trips, and arbitrary bytes never failing other than StateException. */
class StateCodecProperties {
    /** One field: its kind (0 u8, 1 bool, 2 u16, 3 u32, 4 u64, 5 bytes) and a value. */
    record Field(int kind, long value, byte[] bytes) {
    }

    @Provide
    Arbitrary<List<Field>> fields() {
        return net.jqwik.api.Combinators.combine(Arbitraries.integers().between(0, 5), Arbitraries.longs(),
                Arbitraries.bytes().array(byte[].class).ofMaxSize(40)).as(Field::new).list().ofMaxSize(30);
    }

    @Property
    void whatIsWrittenReadsBack(@ForAll("fields") List<Field> fields, @ForAll @IntRange(min = 1, max = 0xFFFF) int version) {
        var w = new StateWriter("PROP", version);
        for (Field f : fields) {
            switch (f.kind()) {
                case 0 -> w.u8((int) f.value());
                case 1 -> w.bool((f.value() & 1) != 0);
                case 2 -> w.u16((int) f.value());
                case 3 -> w.u32((int) f.value());
                case 4 -> w.u64(f.value());
                default -> w.bytes(f.bytes());
            }
        }
        var r = new StateReader("prop", w.toByteArray(), "PROP", 0xFFFF);
        assertEquals(version, r.version());
        for (Field f : fields) {
            switch (f.kind()) {
                case 0 -> assertEquals(f.value() & 0xFF, r.u8());
                case 1 -> assertEquals((f.value() & 1) != 0, r.bool("flag"));
                case 2 -> assertEquals(f.value() & 0xFFFF, r.u16());
                case 3 -> assertEquals((int) f.value(), r.u32());
                case 4 -> assertEquals(f.value(), r.u64());
                default -> assertArrayEquals(f.bytes(), r.bytes("blob", 40));
            }
        }
        r.end();
    }

    /** Any bytes, read with any sequence of reads: the only failure is a StateException. */
    @Property
    void arbitraryBytesFailOnlyWithStateException(@ForAll @Size(max = 64) byte[] noise, @ForAll boolean withHeader,
                                                  @ForAll @Size(max = 20) List<@IntRange(min = 0, max = 6) Integer> reads) {
        byte[] state = noise;
        if (withHeader) {
            byte[] header = new StateWriter("PROP", 1).toByteArray();
            state = new byte[header.length + noise.length];
            System.arraycopy(header, 0, state, 0, header.length);
            System.arraycopy(noise, 0, state, header.length, noise.length);
        }
        try {
            var r = new StateReader("prop", state, "PROP", 3);
            for (int kind : reads) {
                switch (kind) {
                    case 0 -> r.u8();
                    case 1 -> r.bool("flag");
                    case 2 -> r.u16();
                    case 3 -> r.u32();
                    case 4 -> r.u64();
                    case 5 -> r.bytes("blob", 16);
                    default -> r.check("field", r.u8(), 0, 0x7F);
                }
            }
            r.end();
        } catch (StateException expected) {
            // the one failure allowed
        }
    }
}
