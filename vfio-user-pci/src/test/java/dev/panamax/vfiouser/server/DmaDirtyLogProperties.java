package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaLoggingReport;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaRange;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.Tuple.Tuple2;

import java.util.BitSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * {@link DmaDirtyLog} against a plain model (a {@link BitSet} of dirty pages): any writes, at any address (inside,
 * across or outside the logged ranges, up to the top of the 64-bit space), then reports of any aligned sub-range read
 * exactly the model's bits and clear them; and the parameters the kernel and libvfio-user refuse are refused.
 */
class DmaDirtyLogProperties {
    static final long PAGE = 4096;
    /** Two logged ranges with a gap, and one that ends at 2^64. */
    static final List<DmaRange> RANGES = List.of(new DmaRange(0x10000, 64 * PAGE), new DmaRange(0x100000, 130 * PAGE),
            new DmaRange(-16 * PAGE, 16 * PAGE));

    /** The model's page number of a DMA address in a logged range: ranges laid end to end; -1 outside. */
    static long modelPage(long iova) {
        long base = 0;
        for (DmaRange r : RANGES) {
            if (Long.compareUnsigned(iova - r.iova(), r.length()) < 0) {
                return base + (iova - r.iova()) / PAGE;
            }
            base += r.length() / PAGE;
        }
        return -1;
    }

    @Provide
    Arbitrary<List<Tuple2<Long, Integer>>> writes() {
        Arbitrary<Long> near = Arbitraries.of(RANGES.stream().flatMap(r -> java.util.stream.Stream.of(r.iova(), r.iova() + r.length())).toList())
                .flatMap(edge -> Arbitraries.longs().between(-3 * PAGE, 3 * PAGE).map(d -> edge + d));
        Arbitrary<Long> iova = Arbitraries.oneOf(near, Arbitraries.longs());
        Arbitrary<Integer> bytes = Arbitraries.oneOf(Arbitraries.integers().between(1, 16), Arbitraries.integers().between(1, 40 * (int) PAGE));
        return iova.flatMap(a -> bytes.map(n -> Tuple.of(a, n))).list().ofMaxSize(40);
    }

    @Property(tries = 300)
    void reportsReadAndClearExactlyThePagesWritten(@ForAll("writes") List<Tuple2<Long, Integer>> writes,
                                                   @ForAll("splits") int split) {
        DmaDirtyLog log = new DmaDirtyLog(PAGE, RANGES);
        BitSet model = new BitSet();
        for (Tuple2<Long, Integer> w : writes) {
            long a = w.get1();
            long n = w.get2();
            if (Long.compareUnsigned(n - 1, -1L - a) > 0) {
                continue; // would wrap past 2^64: DeviceDma refuses it before the log sees it
            }
            log.mark(a, n);
            long touched = ((a + n - 1) >>> 12) - (a >>> 12) + 1;
            for (long k = 0; k < touched; k++) {
                long m = modelPage((a & -PAGE) + k * PAGE);
                if (m >= 0) {
                    model.set((int) m);
                }
            }
        }
        long base = 0;
        for (DmaRange r : RANGES) {
            long pages = r.length() / PAGE;
            long first = Math.min(split, pages);
            for (long[] part : new long[][]{{0, first}, {first, pages - first}}) {
                if (part[1] == 0) {
                    continue;
                }
                byte[] bits = log.report(new DmaLoggingReport(r.iova() + part[0] * PAGE, part[1] * PAGE, PAGE));
                byte[] want = new byte[(int) ((part[1] + 63) / 64 * 8)];
                for (long i = 0; i < part[1]; i++) {
                    if (model.get((int) (base + part[0] + i))) {
                        want[(int) (i / 8)] |= (byte) (1 << (i % 8));
                    }
                }
                assertArrayEquals(want, bits, "range 0x" + Long.toHexString(r.iova()) + " pages " + part[0] + "+" + part[1]);
            }
            byte[] again = log.report(new DmaLoggingReport(r.iova(), r.length(), PAGE));
            assertArrayEquals(new byte[again.length], again, "a report clears what it read");
            base += pages;
        }
    }

    @Provide
    Arbitrary<Integer> splits() {
        return Arbitraries.integers().between(0, 140);
    }

    @Example
    void badParametersAreRefused() {
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(2048, RANGES)), "below 4096");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(3 * 4096, RANGES)), "not a power of two");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(PAGE, List.of())), "no range");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(PAGE, List.of(new DmaRange(0x1000, 0)))), "empty");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(PAGE, List.of(new DmaRange(0x1800, PAGE)))), "unaligned");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(PAGE, List.of(new DmaRange(-PAGE, 2 * PAGE)))), "wraps");
        assertEquals(Errno.EINVAL, errno(() -> new DmaDirtyLog(PAGE, List.of(new DmaRange(0, 4 * PAGE), new DmaRange(3 * PAGE, PAGE)))), "overlap");
        assertEquals(Errno.E2BIG, errno(() -> new DmaDirtyLog(PAGE, List.of(new DmaRange(0, (DmaDirtyLog.MAX_PAGES + 1) * PAGE)))), "too big");
        DmaDirtyLog log = new DmaDirtyLog(PAGE, RANGES);
        assertEquals(Errno.EINVAL, errno(() -> log.report(new DmaLoggingReport(0x10000, PAGE, 2 * PAGE))), "another page size");
        assertEquals(Errno.EINVAL, errno(() -> log.report(new DmaLoggingReport(0x10800, PAGE, PAGE))), "unaligned");
        assertEquals(Errno.EINVAL, errno(() -> log.report(new DmaLoggingReport(0x0, PAGE, PAGE))), "not logged");
        assertEquals(Errno.EINVAL, errno(() -> log.report(new DmaLoggingReport(0x10000, 65 * PAGE, PAGE))), "past the range's end");
        assertEquals(Errno.EINVAL, errno(() -> log.report(new DmaLoggingReport(0x10000, 0, PAGE))), "empty");
    }

    static int errno(Runnable r) {
        return assertThrows(VfioUserProtocolException.class, r::run).errno();
    }
}
