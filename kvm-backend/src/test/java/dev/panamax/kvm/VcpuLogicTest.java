package dev.panamax.kvm;

import dev.panamax.core.cpu.Segment;
import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_segment;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The parts of {@link KvmVcpu}, {@link X86VcpuSetup}, {@link VcpuRunLoop} and {@link KvmVm} that need no /dev/kvm. */
class VcpuLogicTest {

    @Test
    void flat64BitCodeSegmentBecomesKvmSegment() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = kvm_segment.allocate(arena);
            k.fill((byte) 0x55); // stale bytes must all be overwritten
            X86VcpuSetup.toKvmSegment(new Segment(0x10, 0, 0xffffffffL, 0xb, true, 0, false, true, true, true), k);
            assertEquals(0, kvm_segment.base(k));
            assertEquals(0xffffffff, kvm_segment.limit(k));
            assertEquals(0x10, kvm_segment.selector(k));
            assertEquals(0xb, kvm_segment.type(k));
            assertEquals(1, kvm_segment.present(k));
            assertEquals(0, kvm_segment.dpl(k));
            assertEquals(0, kvm_segment.db(k));
            assertEquals(1, kvm_segment.s(k));
            assertEquals(1, kvm_segment.l(k));
            assertEquals(1, kvm_segment.g(k));
            assertEquals(0, kvm_segment.avl(k));
            assertEquals(0, kvm_segment.unusable(k));
            assertEquals(0, kvm_segment.padding(k));
        }
    }

    @Test
    void dataSegmentWithHighFieldsAndAbsentSegmentIsUnusable() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = kvm_segment.allocate(arena);
            X86VcpuSetup.toKvmSegment(new Segment(0xfff8, 0x12345000L, 0xfffffL, 0x3, false, 3, true, true, false, false), k);
            assertEquals(0x12345000L, kvm_segment.base(k));
            assertEquals(0xfffff, kvm_segment.limit(k));
            assertEquals((short) 0xfff8, kvm_segment.selector(k));
            assertEquals(3, kvm_segment.type(k));
            assertEquals(0, kvm_segment.present(k));
            assertEquals(3, kvm_segment.dpl(k));
            assertEquals(1, kvm_segment.db(k));
            assertEquals(0, kvm_segment.l(k));
            assertEquals(0, kvm_segment.g(k));
            assertEquals(1, kvm_segment.unusable(k));
        }
    }

    @Test
    void segmentsThatDoNotFitAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment k = kvm_segment.allocate(arena);
            assertThrows(IllegalArgumentException.class, () -> X86VcpuSetup.toKvmSegment(
                    new Segment(0x10, 0, 0x1_0000_0000L, 0xb, true, 0, false, true, true, true), k));
            assertThrows(IllegalArgumentException.class, () -> X86VcpuSetup.toKvmSegment(
                    new Segment(0x10000, 0, 0xffff, 0xb, true, 0, false, true, true, true), k));
            assertThrows(IllegalArgumentException.class, () -> X86VcpuSetup.toKvmSegment(
                    new Segment(0x10, 0, 0xffff, 0x10, true, 0, false, true, true, true), k));
            assertThrows(IllegalArgumentException.class, () -> X86VcpuSetup.toKvmSegment(
                    new Segment(0x10, 0, 0xffff, 0xb, true, 4, false, true, true, true), k));
        }
    }

    @Test
    void lapicLint0IsExtIntAndLint1IsNmiOtherBitsKept() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment lapic = kvm_lapic_state.allocate(arena);
            // KVM's reset LVT: masked (bit 16), fixed delivery; plus a vector to see it kept.
            lapic.set(JAVA_INT, 0x350, 0x0001_0000 | 0x30);
            lapic.set(JAVA_INT, 0x360, 0x0001_0000 | 0x0700);
            lapic.set(JAVA_INT, 0x340, 0x1234); // a neighbour, untouched
            X86VcpuSetup.setVirtualWire(lapic);
            assertEquals(0x0001_0730, lapic.get(JAVA_INT, 0x350));
            assertEquals(0x0001_0400, lapic.get(JAVA_INT, 0x360));
            assertEquals(0x1234, lapic.get(JAVA_INT, 0x340));
        }
        assertEquals(0x700, X86VcpuSetup.withDeliveryMode(0, X86VcpuSetup.APIC_DELIVERY_EXTINT));
        assertEquals(0xffff_fcff, X86VcpuSetup.withDeliveryMode(-1, X86VcpuSetup.APIC_DELIVERY_NMI));
    }

    @Test
    void busDataIsLittleEndianOfEachWidth() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(32, 8);
            for (int size : new int[] {1, 2, 3, 4, 8}) {
                s.fill((byte) 0xee);
                VcpuRunLoop.store(s, 5, size, 0x1122334455667788L);
                for (int i = 0; i < size; i++) {
                    assertEquals((byte) (0x88 - 0x11 * i), s.get(JAVA_BYTE, 5 + i), "size " + size + " byte " + i);
                }
                assertEquals((byte) 0xee, s.get(JAVA_BYTE, 5 + size), "size " + size + " wrote past its width");
                assertEquals((byte) 0xee, s.get(JAVA_BYTE, 4));
                long mask = size == 8 ? -1L : (1L << (8 * size)) - 1;
                assertEquals(0x1122334455667788L & mask, VcpuRunLoop.load(s, 5, size), "size " + size);
            }
        }
    }

    @Test
    void memslotsAreReusedAndBounded() {
        Memslots slots = new Memslots(3);
        assertEquals(0, slots.allocate("a"));
        assertEquals(1, slots.allocate("b"));
        assertEquals(2, slots.allocate("c"));
        var full = assertThrows(IllegalStateException.class, () -> slots.allocate("d"));
        assertEquals("no free KVM memory slot for d: all 3 in use", full.getMessage());
        slots.free(1);
        assertEquals(1, slots.allocate("e"));
        assertThrows(IllegalStateException.class, () -> {
            slots.free(2);
            slots.free(2);
        });
    }

    @Test
    void bootMsrsAreFirecrackersList() {
        assertEquals(11, X86VcpuSetup.BOOT_MSRS.size());
        assertEquals(1L, X86VcpuSetup.BOOT_MSRS.stream().filter(m -> m.index() == 0x1a0).findFirst().orElseThrow().value());
        assertEquals(0x806L, X86VcpuSetup.BOOT_MSRS.stream().filter(m -> m.index() == 0x2ff).findFirst().orElseThrow().value());
        assertEquals(11, X86VcpuSetup.BOOT_MSRS.stream().mapToInt(KvmVcpu.Msr::index).distinct().count());
    }

    /**
     * The kick without a handler, on the JVM: a thread that blocks {@link KvmVcpu#KICK_SIGNAL} receives it
     * from pthread_kill without the process dying, and sigtimedwait with a zero timeout takes it (then
     * finds nothing: EAGAIN). KVM_RUN's EINTR is the part only a KVM host can show.
     */
    @Test
    void kickSignalStaysPendingWhenBlockedAndIsDrained() throws Exception {
        AtomicLong pthread = new AtomicLong();
        CountDownLatch blocked = new CountDownLatch(1);
        CountDownLatch sent = new CountDownLatch(1);
        CompletableFuture<int[]> result = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().start(() -> {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment set = Libc.sigset(arena, KvmVcpu.KICK_SIGNAL);
                Libc.pthreadSigmask(Libc.SIG_BLOCK, set, MemorySegment.NULL);
                pthread.set(Libc.pthreadSelf());
                blocked.countDown();
                sent.await(10, TimeUnit.SECONDS);
                MemorySegment zero = arena.allocate(16, 8);
                result.complete(new int[] {Libc.sigtimedwaitRaw(set, zero), Libc.sigtimedwaitRaw(set, zero)});
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        assertTrue(blocked.await(10, TimeUnit.SECONDS));
        Libc.pthreadKill(pthread.get(), KvmVcpu.KICK_SIGNAL);
        sent.countDown();
        int[] r = result.get(10, TimeUnit.SECONDS);
        t.join();
        assertEquals(KvmVcpu.KICK_SIGNAL, r[0]);
        assertEquals(-Errno.EAGAIN, r[1]);
    }

    /** KVM sizes a slot's dirty bitmap as ALIGN(npages, BITS_PER_LONG) / 8 bytes (virt/kvm/kvm_main.c). */
    @Test
    void dirtyBitmapHasOneBitPerPageInWholeWords() {
        assertEquals(1, KvmVm.bitmapWords(4096));
        assertEquals(1, KvmVm.bitmapWords(64 * 4096));
        assertEquals(2, KvmVm.bitmapWords(65 * 4096));
        assertEquals(4, KvmVm.bitmapWords(0xd0000)); // KvmSmoke's 208 pages
        assertEquals(2048, KvmVm.bitmapWords(512L << 20));
    }
}
