package dev.panamax.vmm.migration;

import dev.panamax.kvm.VcpuState;
import dev.panamax.kvm.VmState;
import dev.panamax.kvm.bindings.kvm_debugregs;
import dev.panamax.kvm.bindings.kvm_irqchip;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_pit_state2;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_sregs;
import dev.panamax.kvm.bindings.kvm_vcpu_events;
import dev.panamax.kvm.bindings.kvm_xcrs;
import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Source and destination of a live migration in two threads over a real UNIX socket, no KVM: the "VM" is a RAM
 * segment with a writer thread that keeps dirtying pages (its own dirty bitmap standing in for KVM's) until paused.
 * After the last round the destination's RAM equals the source's; failures leave the source running.
 */
class MigrationLoopbackTest {
    private static final long RAM = 32L << 20;
    private static final SnapshotManifest.Machine MACHINE = new SnapshotManifest.Machine(1, RAM, "console=ttyS0", "ANONYMOUS");

    private final Arena arena = Arena.ofShared();

    @AfterEach
    void close() {
        arena.close();
    }

    static MachineState state() {
        byte[][] chips = new byte[3][(int) kvm_irqchip.sizeof()];
        for (int i = 0; i < 3; i++) {
            chips[i][(int) kvm_irqchip.chip_id$offset()] = (byte) i;
        }
        VcpuState cpu = new VcpuState(0, new byte[(int) kvm_regs.sizeof()], new byte[(int) kvm_sregs.sizeof()],
                new byte[VcpuState.XSAVE_LEGACY_BYTES], new byte[(int) kvm_xcrs.sizeof()], new byte[(int) kvm_lapic_state.sizeof()],
                new byte[(int) kvm_vcpu_events.sizeof()], new byte[(int) kvm_debugregs.sizeof()], 0,
                List.of(new VcpuState.MsrValue(0x10, 42)));
        return new MachineState(new VmState(chips[0], chips[1], chips[2], new byte[(int) kvm_pit_state2.sizeof()], 123L),
                List.of(cpu), Map.of("com1", new byte[]{4, 5, 6}));
    }

    /**
     * The fake machine's assigned device: none; one whose writes go into a DMA log of its own (a vfio-user server with
     * DMA logging); or one whose writes no log sees (a server without it, a kernel VFIO device).
     */
    enum Device { NONE, LOGGED, UNLOGGED }

    /**
     * A fake running machine: a writer thread (the vCPU) dirties random pages until paused; a second one (the device's
     * DMA) writes random pages whether or not the vCPU is paused, until {@link #capture} stops the device.
     */
    final class FakeVm implements MigrationSource.Vm {
        final MemorySegment ram = arena.allocate(RAM, 4096);
        final AtomicLongArray dirty = new AtomicLongArray((int) (RAM / 4096 / 64));
        volatile boolean logging, stopped;
        boolean paused;
        int pauses, resumes;
        long writes;
        final Thread writer;
        final Device device;
        final AtomicLongArray deviceLog = new AtomicLongArray((int) (RAM / 4096 / 64));
        volatile boolean deviceStopped;
        volatile long deviceWrites;
        volatile boolean deviceWroteWhilePaused;
        Thread deviceThread;

        FakeVm() {
            this(Device.NONE);
        }

        FakeVm(Device device) {
            this.device = device;
            if (device != Device.NONE) {
                deviceThread = Thread.ofPlatform().name("fake-device").daemon().start(() -> {
                    Random d = new Random(99);
                    while (!deviceStopped && !stopped) {
                        long page = d.nextInt((int) (RAM / 4096));
                        ram.set(JAVA_LONG, page * 4096 + 8 * d.nextInt(512), d.nextLong() | 1);
                        if (device == Device.LOGGED && logging) {
                            deviceLog.getAndUpdate((int) (page / 64), v -> v | (1L << (page % 64)));
                        }
                        deviceWrites++;
                        synchronized (this) {
                            deviceWroteWhilePaused |= paused;
                        }
                        if (deviceWrites % 16 == 0) {
                            Thread.yield();
                        }
                    }
                });
            }
            Random r = new Random(17);
            for (long p = 0; p < RAM / 4096; p += 3) { // a third of the pages hold data at the start
                ram.set(JAVA_LONG, p * 4096 + 8 * r.nextInt(512), r.nextLong() | 1);
            }
            writer = Thread.ofPlatform().name("fake-vcpu").daemon().start(() -> {
                Random w = new Random(4);
                while (!stopped) {
                    synchronized (this) {
                        while (paused && !stopped) {
                            try {
                                wait();
                            } catch (InterruptedException e) {
                                return;
                            }
                        }
                        // Mostly a hot set of 64 pages, sometimes anywhere; sometimes a page goes back to zero.
                        long page = w.nextInt(10) == 0 ? w.nextInt((int) (RAM / 4096)) : w.nextInt(64) * 7;
                        if (w.nextInt(50) == 0) {
                            ram.asSlice(page * 4096, 4096).fill((byte) 0);
                        } else {
                            ram.set(JAVA_LONG, page * 4096 + 8 * w.nextInt(512), w.nextLong());
                        }
                        if (logging) {
                            int word = (int) (page / 64);
                            dirty.getAndUpdate(word, v -> v | (1L << (page % 64)));
                        }
                        writes++;
                    }
                    if (writes % 64 == 0) {
                        Thread.onSpinWait();
                    }
                }
            });
        }

        @Override
        public SnapshotManifest.Machine machine() {
            return MACHINE;
        }

        @Override
        public List<SnapshotManifest.Device> devices() {
            return List.of();
        }

        @Override
        public MemorySegment ram() {
            return ram;
        }

        @Override
        public void startDirtyLog() {
            logging = true;
        }

        @Override
        public long[] dirtyPages() {
            long[] b = new long[dirty.length()];
            for (int i = 0; i < b.length; i++) {
                b[i] = dirty.getAndSet(i, 0) | deviceLog.getAndSet(i, 0);
            }
            return b;
        }

        @Override
        public List<String> unloggedWriters() {
            return device == Device.UNLOGGED ? List.of("disk0") : List.of();
        }

        @Override
        public void stopDirtyLog() {
            logging = false;
        }

        @Override
        public synchronized boolean paused() {
            return paused;
        }

        @Override
        public synchronized void pause() {
            paused = true; // the writer holds this monitor while it writes: none is half done now
            pauses++;
        }

        @Override
        public synchronized void resume() {
            paused = false;
            resumes++;
            notifyAll();
        }

        /**
         * Stops the device first, as migration v2's STOP does: no DMA after it. The device runs on a moment after the
         * vCPUs paused, as a real one finishing its requests would.
         */
        @Override
        public MachineState capture() {
            if (device != Device.NONE) {
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            stopDevice();
            return state();
        }

        void stopDevice() {
            deviceStopped = true;
            if (deviceThread != null) {
                try {
                    deviceThread.join(5000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }

        void stop() throws InterruptedException {
            stopDevice();
            stopped = true;
            synchronized (this) {
                notifyAll();
            }
            writer.join(5000); // before the arena goes
        }
    }

    private static CompletableFuture<MemorySegment> destination(Path socket, Arena arena, boolean refuse) {
        CompletableFuture<MemorySegment> done = new CompletableFuture<>();
        Thread.ofPlatform().name("destination").daemon().start(() -> {
            try (IncomingMigration in = IncomingMigration.await(socket, Duration.ofSeconds(20), Duration.ofSeconds(20))) {
                assertEquals(MACHINE, in.machine());
                assertEquals(List.of(), in.devices());
                if (refuse) {
                    in.fail("--incoming: the snapshot's devices are none, the command line's [vfio-pci at 00:01.0]");
                    done.complete(null);
                    return;
                }
                MemorySegment ram = arena.allocate(RAM, 4096);
                in.loadRam(ram);
                assertEquals(state().vcpus(), in.state().vcpus());
                assertArrayEquals(new byte[]{4, 5, 6}, in.state().devices().get("com1"));
                in.running();
                done.complete(ram);
            } catch (Throwable t) {
                done.completeExceptionally(t);
            }
        });
        return done;
    }

    /** On a thread of its own (the common pool has one thread on a 2-core host, maybe busy). */
    private static CompletableFuture<Void> async(Runnable r) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try {
                r.run();
                f.complete(null);
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    private static void awaitSocket(Path socket) throws InterruptedException {
        for (int i = 0; i < 200 && !Files.exists(socket); i++) {
            Thread.sleep(10);
        }
        Thread.sleep(100); // the file exists from bind(2); connections are taken from listen(2), a moment later
    }

    @Test
    void theDestinationsRamEqualsTheSourcesAfterTheLastRound(@TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        CompletableFuture<MemorySegment> dst = destination(socket, arena, false);
        awaitSocket(socket);
        FakeVm vm = new FakeVm();
        try {
            Thread.sleep(50); // the writer gets going
            MigrationSource.Result r = MigrationSource.migrate(vm, socket, Duration.ofSeconds(20));
            MemorySegment copy = dst.get(30, TimeUnit.SECONDS);
            assertTrue(vm.paused() && vm.pauses == 1 && vm.resumes == 0, "the source stays paused after a migration");
            assertFalse(vm.logging);
            assertEquals(-1, copy.mismatch(vm.ram), "RAM differs at byte " + copy.mismatch(vm.ram));
            assertTrue(r.rounds() >= 2 && r.pagesSent() > RAM / 4096 / 3, r.toString());
            assertTrue(vm.writes > 0);
            System.out.printf("loopback migration: %s, %d writes by the fake vCPU%n", r, vm.writes);
        } finally {
            vm.stop();
        }
    }

    /**
     * A device writing guest RAM behind the vCPUs' dirty log, also while they are paused: with its DMA log merged the
     * copy is exact after pre-copy rounds; without one there is no pre-copy (round 0 is the paused one) and the copy is
     * still exact; the device writes on after the vCPUs pause, until it is stopped.
     */
    @ParameterizedTest
    @EnumSource(value = Device.class, names = {"LOGGED", "UNLOGGED"})
    void aDevicesDmaReachesTheDestination(Device device, @TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        CompletableFuture<MemorySegment> dst = destination(socket, arena, false);
        awaitSocket(socket);
        FakeVm vm = new FakeVm(device);
        try {
            Thread.sleep(50); // the writers get going
            MigrationSource.Result r = MigrationSource.migrate(vm, socket, Duration.ofSeconds(20));
            MemorySegment copy = dst.get(30, TimeUnit.SECONDS);
            assertEquals(-1, copy.mismatch(vm.ram), "RAM differs at byte " + copy.mismatch(vm.ram));
            assertTrue(vm.deviceWrites > 0 && vm.deviceStopped);
            assertTrue(vm.deviceWroteWhilePaused, "the device wrote while the vCPUs were paused");
            if (device == Device.LOGGED) {
                assertTrue(r.rounds() >= 2, r.toString());
            } else {
                assertEquals(1, r.rounds(), "no pre-copy: " + r);
                assertEquals(r.pagesSent(), r.finalPages(), r.toString());
            }
            System.out.printf("loopback migration with a %s device: %s, %d device writes (%s while paused)%n", device, r,
                    vm.deviceWrites, vm.deviceWroteWhilePaused ? "some" : "none");
        } finally {
            vm.stop();
        }
    }

    @Test
    void aDestinationThatRefusesLeavesTheSourceRunning(@TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        CompletableFuture<MemorySegment> dst = destination(socket, arena, true);
        awaitSocket(socket);
        FakeVm vm = new FakeVm();
        try {
            MigrationException e = assertThrows(MigrationException.class,
                    () -> MigrationSource.migrate(vm, socket, Duration.ofSeconds(20)));
            assertTrue(e.getMessage().contains("the peer gave up: --incoming: the snapshot's devices are none")
                    || e.getMessage().contains("the peer"), e.getMessage());
            dst.get(10, TimeUnit.SECONDS);
            assertFalse(vm.paused(), "the source must run on");
            assertFalse(vm.logging, "dirty logging must be off again");
        } finally {
            vm.stop();
        }
    }

    @Test
    void aDestinationThatTakesNothingTimesOutAndTheSourceRunsOn(@TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            FakeVm vm = new FakeVm();
            try {
                long t0 = System.nanoTime();
                MigrationException e = assertThrows(MigrationException.class,
                        () -> MigrationSource.migrate(vm, socket, Duration.ofMillis(500)));
                assertTrue(e.getMessage().contains("sent or took nothing"), e.getMessage());
                assertTrue(System.nanoTime() - t0 < 10_000_000_000L);
                assertFalse(vm.paused());
                assertFalse(vm.logging);
            } finally {
                vm.stop();
            }
        }
        FakeVm idle = new FakeVm();
        try {
            MigrationException none = assertThrows(MigrationException.class,
                    () -> MigrationSource.migrate(idle, tmp.resolve("nobody.sock"), Duration.ofSeconds(1)));
            assertTrue(none.getMessage().startsWith("cannot connect to "), none.getMessage());
        } finally {
            idle.stop();
        }
    }

    @Test
    void aDestinationGivenGarbageOrNothingSaysSo(@TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        CompletableFuture<Void> client = async(() -> {
            try {
                awaitSocket(socket);
                try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
                    c.write(ByteBuffer.wrap("hello, I am no migration\n".getBytes()));
                }
            } catch (IOException | InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        MigrationException e = assertThrows(MigrationException.class,
                () -> IncomingMigration.await(socket, Duration.ofSeconds(20), Duration.ofSeconds(5)));
        assertEquals("the peer is not a Panamax migration source (the stream starts with \"hello, I\")", e.getMessage());
        client.get(10, TimeUnit.SECONDS);
        assertFalse(Files.exists(socket), "the socket file is removed");

        MigrationException late = assertThrows(MigrationException.class,
                () -> IncomingMigration.await(tmp.resolve("late.sock"), Duration.ofMillis(200), Duration.ofSeconds(5)));
        assertTrue(late.getMessage().startsWith("no migration source connected to "), late.getMessage());

        Files.writeString(tmp.resolve("file"), "x");
        MigrationException file = assertThrows(MigrationException.class,
                () -> IncomingMigration.await(tmp.resolve("file"), Duration.ofMillis(200), Duration.ofSeconds(5)));
        assertTrue(file.getMessage().contains("exists and is not a socket"), file.getMessage());
    }

    @Test
    void aPageOutsideRamIsRefused(@TempDir Path tmp) throws Exception {
        Path socket = tmp.resolve("mig.sock");
        CompletableFuture<Void> source = async(() -> {
            try {
                awaitSocket(socket);
                try (FrameChannel c = new FrameChannel(SocketChannel.open(UnixDomainSocketAddress.of(socket)), Duration.ofSeconds(5))) {
                    c.writeHeader();
                    c.write(FrameChannel.MACHINE, ByteBuffer.wrap(Json.MAPPER.writeValueAsBytes(new Json.Description(MACHINE, List.of()))));
                    c.write(FrameChannel.PAGES, ByteBuffer.allocate(FrameChannel.PAGE_RECORD).putLong(RAM).rewind());
                    c.read(FrameChannel.RUNNING);
                }
            } catch (IOException | InterruptedException e) {
                throw new RuntimeException(e);
            }
        });
        try (IncomingMigration in = IncomingMigration.await(socket, Duration.ofSeconds(20), Duration.ofSeconds(5))) {
            MigrationException e = assertThrows(MigrationException.class, () -> in.loadRam(arena.allocate(RAM, 4096)));
            assertEquals("migration stream: page at offset 0x2000000 is outside the 32 MiB of guest RAM or not page-aligned",
                    e.getMessage());
            in.fail(e.getMessage());
        }
        Throwable t = assertThrows(Exception.class, () -> source.get(10, TimeUnit.SECONDS));
        assertTrue(String.valueOf(t.getCause()).contains("the peer gave up: migration stream: page at offset"), String.valueOf(t));
    }
}
