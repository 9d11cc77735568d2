package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.statistics.Statistics;

/**
 * Property-based tests (issue 15) of {@link BzImage#parse} on mutated {@link FakeKernel} images: bytes of the boot
 * sector and setup header overwritten (mostly), anywhere, or the file cut short or grown. Each either parses into an
 * image that keeps the loader's invariants (its parts lie within the file, a 64-bit entry, loaded high, a command
 * line, a power-of-two alignment) or is refused with a {@link BootException} whose message names the file; no other
 * exception escapes. Tries: {@code jqwik.tries.default} (junit-platform.properties).
 */
class BzImageProperties {
    /** One change: overwrite {@code value} at {@code offset}, or (offset &lt; 0) resize the file to {@code value} bytes. */
    record Mutation(int offset, int value) {
    }

    @Provide
    Arbitrary<List<Mutation>> mutations() {
        int length = FakeKernel.valid().capacity();
        Arbitrary<Integer> b = Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.integers().between(0, 255)),
                Tuple.of(1, Arbitraries.of(0, 0xFF, 0x80, 0x7F, 0x01)));
        Arbitrary<Mutation> header = Combinators.combine(Arbitraries.integers().between(0x1F0, 0x270), b).as(Mutation::new);
        Arbitrary<Mutation> anywhere = Combinators.combine(Arbitraries.integers().between(0, length - 1), b).as(Mutation::new);
        Arbitrary<Mutation> resize = Arbitraries.frequencyOf(
                        Tuple.of(3, Arbitraries.integers().between(0, 0x270)),
                        Tuple.of(2, Arbitraries.integers().between(0, length + 4096)))
                .map(n -> new Mutation(-1, n));
        return Arbitraries.frequencyOf(Tuple.of(8, header), Tuple.of(1, anywhere), Tuple.of(1, resize))
                .list().ofMinSize(1).ofMaxSize(12);
    }

    @Property
    void aMutatedHeaderParsesOrIsRefusedWithOneMessage(@ForAll("mutations") List<Mutation> mutations) {
        byte[] bytes = FakeKernel.valid().array();
        for (Mutation m : mutations) {
            if (m.offset() < 0) {
                bytes = Arrays.copyOf(bytes, m.value());
            } else if (m.offset() < bytes.length) {
                bytes[m.offset()] = (byte) m.value();
            }
        }
        BzImage image;
        try {
            image = BzImage.parse("vmlinuz-fuzz", bytes);
        } catch (BootException e) {
            assertNotNull(e.getMessage());
            assertTrue(e.getMessage().contains("vmlinuz-fuzz"), "the message names the file: " + e.getMessage());
            assertEquals(-1, e.getMessage().indexOf('\n'), "one line: " + e.getMessage());
            Statistics.label("outcome").collect("refused");
            return;
        }
        Statistics.label("outcome").collect("parsed");
        // Everything a loader reads lies within the file.
        assertTrue(image.setupSize() >= 2 * 512 && image.setupSize() <= 256 * 512 && image.setupSize() % 512 == 0);
        assertTrue(image.setupSize() + image.protectedModeKernel().byteSize() <= bytes.length);
        assertTrue(image.protectedModeKernel().byteSize() > 0);
        assertTrue(image.setupHeaderEnd() <= bytes.length);
        assertEquals(image.setupHeaderEnd() - 0x1F1, image.setupHeader().length);
        assertNotEquals(0, image.xloadflags() & ZeroPage.XLF_KERNEL_64);
        assertNotEquals(0, image.loadflags() & ZeroPage.LOADED_HIGH);
        assertTrue(image.cmdlineSize() > 0);
        assertEquals(1, Long.bitCount(image.kernelAlignment()));
        assertTrue(image.protocolVersion() >= BzImage.MIN_PROTOCOL);
        assertNotNull(image.toString());
        assertNotNull(image.protocolVersionString());
        image.initSize();
        image.initrdAddrMax();
        image.prefAddress();
        image.relocatable();
    }
}
