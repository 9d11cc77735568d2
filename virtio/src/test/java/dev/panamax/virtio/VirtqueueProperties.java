package dev.panamax.virtio;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamax.core.sys.MemFd;
import dev.panamax.vfiouser.server.DeviceDma;
import dev.panamax.vfiouser.server.DmaException;
import dev.panamax.vfiouser.server.TestDma;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.BeforeContainer;
import net.jqwik.api.statistics.Statistics;

/**
 * Property-based tests (issue 15) of the split-virtqueue walker against hostile driver memory: random descriptor
 * tables and rings in real mmapped guest RAM (a {@link MemFd} behind a {@link DeviceDma}), with loops in chains and
 * in indirect tables, lengths near 2^32 and addresses near 2^64. Invariants: {@link Virtqueue#pop} ends in bounded
 * time, throws only {@link VirtqueueException} (a ring that breaks the rules) or {@link DmaException} (a ring or
 * table outside the mapped RAM), never writes guest RAM, and returns chains that obey the spec (head within the
 * queue, at most the descriptors it may have, readable buffers first, no empty buffer); {@link Virtqueue#push}
 * writes only the used ring. Tries: {@code jqwik.tries.default} (junit-platform.properties).
 */
class VirtqueueProperties {
    static final long RAM = 0x10000;
    static final int RAM_SIZE = 0x10000;
    static MemFd memory;
    static DeviceDma dma;

    @BeforeContainer
    static void map() {
        memory = new MemFd("guest", RAM_SIZE);
        dma = TestDma.over(memory, RAM);
    }

    /*
     * No @AfterContainer munmap: jqwik's shrinker runs on a pool thread and may still be inside a try when its
     * time limit ends the property; unmapping under it is a SIGSEGV of the test JVM. 64 KiB stay mapped until exit.
     */

    /** One descriptor as the driver wrote it. */
    record Desc(long addr, long len, int flags, int next) {
    }

    /** The driver's layout: queue size, the three ring addresses, the descriptors, the avail ring. */
    record Layout(int size, long desc, long driver, long device, List<Desc> descs, int availIdx, List<Integer> heads,
                  long seed) {
    }

    @Provide
    Arbitrary<Layout> layouts() {
        Arbitrary<Integer> size = Arbitraries.of(1, 2, 4, 8, 16, 64, 256);
        // Ring addresses: mostly in RAM and aligned, sometimes anywhere, misaligned, near 2^64 or just below RAM.
        Arbitrary<Long> ring = Arbitraries.frequencyOf(
                Tuple.of(40, Arbitraries.longs().between(0, RAM_SIZE / 16 - 1).map(i -> RAM + 16 * i)),
                Tuple.of(1, Arbitraries.longs().between(RAM - 64, RAM + RAM_SIZE + 64)),
                Tuple.of(1, Arbitraries.longs().between(1, 64).map(k -> -16 * k)),
                Tuple.of(1, Arbitraries.longs()));
        Arbitrary<Long> addr = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.longs().between(0, RAM_SIZE / 16 - 1).map(i -> RAM + 16 * i)),
                Tuple.of(2, Arbitraries.longs().between(1, 4096).map(k -> -k)),
                Tuple.of(1, Arbitraries.longs()),
                Tuple.of(1, Arbitraries.just(0L)));
        Arbitrary<Long> len = Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.longs().between(0, 64).map(k -> 16 * k)),
                Tuple.of(3, Arbitraries.longs().between(0, 0xFFFF_FFFFL)),
                Tuple.of(2, Arbitraries.longs().between(0xFFFF_FF00L, 0xFFFF_FFFFL)),
                Tuple.of(1, Arbitraries.of(0x8000_0000L, 0x7FFF_FFF0L, 0x1_0000_0000L - 16)));
        Arbitrary<Integer> flags = Arbitraries.frequencyOf(
                Tuple.of(3, Arbitraries.of(Virtqueue.VIRTQ_DESC_F_NEXT, Virtqueue.VIRTQ_DESC_F_NEXT | Virtqueue.VIRTQ_DESC_F_WRITE)),
                Tuple.of(6, Arbitraries.of(0, Virtqueue.VIRTQ_DESC_F_WRITE)),
                Tuple.of(1, Arbitraries.just(Virtqueue.VIRTQ_DESC_F_INDIRECT)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xFFFF)));
        Arbitrary<Integer> next = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(0, 3)),
                Tuple.of(2, Arbitraries.integers().between(0, 300)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xFFFF)));
        Arbitrary<Desc> desc = Combinators.combine(addr, len, flags, next).as(Desc::new);
        Arbitrary<Integer> availIdx = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(1, 2)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xFFFF)));
        Arbitrary<Integer> head = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(0, 3)),
                Tuple.of(1, Arbitraries.integers().between(0, 0xFFFF)));
        return Combinators.combine(size, ring, ring, ring, desc.list().ofMaxSize(300), availIdx,
                        head.list().ofMaxSize(16), Arbitraries.longs())
                .as(Layout::new);
    }

    /** Fills RAM with noise, then writes the layout's descriptors at desc (and, where in RAM, as indirect tables). */
    private static void write(Layout l) {
        byte[] noise = new byte[RAM_SIZE];
        new Random(l.seed()).nextBytes(noise);
        var ram = memory.mapping();
        ram.copyFrom(java.lang.foreign.MemorySegment.ofArray(noise));
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < l.descs().size(); i++) {
            Desc d = l.descs().get(i);
            // Descriptor i goes into the queue's table; an indirect one points into RAM that also holds descriptors.
            long at = l.desc() + 16L * i;
            if (!inRam(at, 16) || Long.compareUnsigned(at, l.desc()) < 0) {
                continue;
            }
            b.putLong(0, d.addr()).putInt(8, (int) d.len()).putShort(12, (short) d.flags()).putShort(14, (short) d.next());
            java.lang.foreign.MemorySegment.copy(b.array(), 0, ram, JAVA_BYTE, at - RAM, 16);
        }
        putShort(l.driver() + 2, l.availIdx());
        for (int i = 0; i < l.heads().size(); i++) {
            putShort(l.driver() + 4 + 2L * i, l.heads().get(i));
        }
    }

    private static void putShort(long at, int v) {
        if (inRam(at, 2)) {
            memory.mapping().set(JAVA_BYTE, at - RAM, (byte) v);
            memory.mapping().set(JAVA_BYTE, at - RAM + 1, (byte) (v >>> 8));
        }
    }

    /** @return the message without its numbers, cut to 40 characters: the kind of refusal, for the statistics */
    private static String kind(String message) {
        String m = message.replaceAll("0x[0-9a-f]+|[0-9]+", "N");
        return m.substring(0, Math.min(40, m.length()));
    }

    /** @return whether {@code [at, at + bytes)} lies in RAM, compared unsigned (no wrap near 2^63 or 2^64) */
    private static boolean inRam(long at, int bytes) {
        return Long.compareUnsigned(at - RAM, RAM_SIZE - bytes) <= 0;
    }

    private static byte[] snapshot() {
        return memory.mapping().toArray(JAVA_BYTE);
    }

    @Property
    void walkerEndsAndKeepsItsBounds(@ForAll("layouts") Layout l) {
        write(l);
        var q = new Virtqueue(0, 256);
        q.size = l.size();
        q.desc = l.desc();
        q.driver = l.driver();
        q.device = l.device();
        q.enable();
        long start = System.nanoTime();
        int popped = 0;
        String outcome = "empty ring";
        // More pops than the ring can publish: the walker must stop returning chains (null) or refuse the ring.
        for (int round = 0; round < l.size() + 2; round++) {
            byte[] before = snapshot();
            Virtqueue.Chain chain;
            try {
                chain = q.pop(dma);
            } catch (VirtqueueException | DmaException e) {
                assertNotNull(e.getMessage());
                outcome = e.getClass().getSimpleName() + (popped > 0 ? " after chains" : "") + ": " + kind(e.getMessage());
                assertArrayEquals(before, snapshot(), "pop wrote guest RAM before refusing");
                break;
            }
            assertArrayEquals(before, snapshot(), "pop wrote guest RAM");
            if (chain == null) {
                break;
            }
            popped++;
            outcome = "chains, then an empty ring";
            assertTrue(chain.head() >= 0 && chain.head() < l.size(), "head " + chain.head() + " outside the queue");
            // At most size direct descriptors, then at most size in one indirect table.
            assertTrue(chain.buffers().size() <= 2 * l.size(), chain.buffers().size() + " buffers in a queue of " + l.size());
            boolean writable = false;
            for (Virtqueue.Buffer buf : chain.buffers()) {
                assertTrue(buf.len() > 0 && buf.len() <= 0xFFFF_FFFFL, "buffer length " + buf.len());
                assertTrue(!writable || buf.writable(), "a readable buffer after a writable one");
                writable = buf.writable();
            }
            // A used ring that runs past the end of RAM is refused (DmaException) after the part inside RAM is
            // written (DeviceDma copies range by range); either way push writes nothing outside the used ring.
            boolean refused = false;
            try {
                q.push(dma, chain.head(), chain.writableBytes());
            } catch (DmaException e) {
                refused = true;
                outcome = "chains, then a used ring outside RAM";
            }
            byte[] after = snapshot();
            long usedEnd = l.device() + 4 + 8L * l.size();
            for (int i = 0; i < RAM_SIZE; i++) {
                if (before[i] != after[i]) {
                    long at = RAM + i;
                    assertTrue(Long.compareUnsigned(at, l.device()) >= 0 && Long.compareUnsigned(at, usedEnd) < 0,
                            String.format("push wrote 0x%x outside the used ring", at));
                }
            }
            if (refused) {
                break;
            }
        }
        assertTrue(popped <= l.size(), popped + " chains from a ring of " + l.size());
        long ms = (System.nanoTime() - start) / 1_000_000;
        if (ms > 2000) {
            fail("the walker took " + ms + " ms");
        }
    }
}
