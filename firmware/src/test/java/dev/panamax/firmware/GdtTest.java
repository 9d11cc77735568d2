package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamax.core.cpu.Segment;
import java.util.Random;
import org.junit.jupiter.api.Test;

class GdtTest {

    @Test
    void bootSegmentsEncodeToTheKernelsGdtValues() {
        // GDT_ENTRY(0xa09b, 0, 0xfffff) and GDT_ENTRY(0xc093, 0, 0xfffff) in arch/x86/boot/pm.c terms,
        // with the accessed bit set as KVM reports it.
        assertEquals(0x00AF9B000000FFFFL, Gdt.encode(LinuxBoot.CODE));
        assertEquals(0x00CF93000000FFFFL, Gdt.encode(LinuxBoot.DATA));
        assertEquals(LinuxBoot.CODE, Gdt.decode(0x00AF9B000000FFFFL, 0x10));
        assertEquals(LinuxBoot.DATA, Gdt.decode(0x00CF93000000FFFFL, 0x18));
    }

    @Test
    void everyFieldRoundTrips() {
        Random r = new Random(42);
        for (int n = 0; n < 10_000; n++) {
            boolean g = r.nextBoolean();
            long limit = r.nextInt(1 << 20);
            if (g) {
                limit = (limit << 12) | 0xFFF;
            }
            Segment s = new Segment(r.nextInt(1 << 16), r.nextLong() & 0xFFFFFFFFL, limit, r.nextInt(16),
                    r.nextBoolean(), r.nextInt(4), r.nextBoolean(), r.nextBoolean(), r.nextBoolean(), g);
            assertEquals(s, Gdt.decode(Gdt.encode(s), s.selector()));
        }
    }

    @Test
    void rejectsUnencodableSegments() {
        assertThrows(IllegalArgumentException.class,
                () -> Gdt.encode(new Segment(0, 1L << 32, 0, 3, true, 0, false, true, false, false)));
        assertThrows(IllegalArgumentException.class,
                () -> Gdt.encode(new Segment(0, 0, 0x100000, 3, true, 0, false, true, false, false)));
        assertThrows(IllegalArgumentException.class,
                () -> Gdt.encode(new Segment(0, 0, 0x1000, 3, true, 0, false, true, false, true)));
    }
}
