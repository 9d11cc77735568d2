package dev.panamax.tests.bench;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.core.sys.MemFd;
import dev.panamax.vfio.DmaMemoryListener;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserRegion;
import dev.panamax.vfiouser.server.VfioUserServer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * vfio-user between Panamax's Java client ({@link VfioUserClient}) and its Java server library
 * ({@link VfioUserServer}), in one process over a UNIX socket; needs no KVM.
 *
 * <ul>
 * <li>REGION_READ round trip: {@link VfioUserClient#regionRead} of 4 bytes of a trapped BAR0, one
 *     request and one reply each, timed over {@code reads} calls;</li>
 * <li>DMA throughput, device side ({@code server.dma()}): {@code dmaBytes} read and written in 1 MiB calls into
 *     a 64 MiB "guest RAM" memfd that the client mapped with a {@link DmaMemoryListener}, once with the fd
 *     passed (the server mmaps it: plain memory copies) and once without (the forced message path: each
 *     call becomes DMA_READ / DMA_WRITE messages of at most the client's max_data_xfer_size).</li>
 * </ul>
 * Each figure is measured {@code runs} times after one untimed warm-up round.
 */
final class VfioUserBench {
    static final long RAM = 64L << 20;
    static final int CHUNK = 1 << 20;

    /** One measured round: REGION_READ ns per round trip, and DMA MiB/s read and write. */
    record Round(double regionReadNs, double dmaReadMiBs, double dmaWriteMiBs) {
    }

    private VfioUserBench() {
    }

    /** Connects a client to a fresh server over {@code socket}, maps RAM (with or without its fd), runs {@code runs + 1} rounds. */
    static Round[] measure(Path dir, boolean passFds, int runs, int reads, long dmaBytes) throws Exception {
        byte[] bar0 = new byte[4096];
        RegionHandler handler = new RegionHandler() {
            @Override
            public void read(long offset, byte[] into) {
                System.arraycopy(bar0, (int) offset, into, 0, into.length);
            }

            @Override
            public void write(long offset, byte[] data) {
                System.arraycopy(data, 0, bar0, (int) offset, data.length);
            }
        };
        VfioUserDevice device = VfioUserDevice.builder(VfioUserDevice.pciFunction("bench", 0x1af4, 0x10f0, 0xff0000, 0))
                .region(VfioUserRegion.trapped(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), bar0.length, handler))
                .build();
        Path socket = dir.resolve(passFds ? "fd.sock" : "msg.sock");
        CompletableFuture<VfioUserServer> accepted = CompletableFuture.supplyAsync(() -> {
            VfioUserServer s = VfioUserServer.accept(socket, device, Duration.ofSeconds(10));
            s.start();
            return s;
        });
        VfioUserClient client = connect(socket, passFds);
        VfioUserServer server = accepted.get();
        AddressSpace space = new AddressSpace();
        Round[] rounds = new Round[runs + 1];
        try (MemFd ram = new MemFd("bench-ram", RAM); Arena arena = Arena.ofConfined()) {
            DmaMemoryListener listener = new DmaMemoryListener(client.dma());
            space.addListener(listener);
            RamRegion region = new RamRegion("ram", 0, RAM, ram.mapping(), ram.fd(), 0);
            space.add(region);
            MemorySegment word = arena.allocate(4);
            MemorySegment chunk = arena.allocate(CHUNK, 4096);
            for (int r = 0; r <= runs; r++) {
                long t0 = System.nanoTime();
                for (int i = 0; i < reads; i++) {
                    client.regionRead(vfio_h.VFIO_PCI_BAR0_REGION_INDEX(), (i * 4L) & 0xfff, word);
                }
                double readNs = (System.nanoTime() - t0) / (double) reads;
                long chunks = dmaBytes / CHUNK;
                t0 = System.nanoTime();
                for (long c = 0; c < chunks; c++) {
                    server.dma().read((c * CHUNK) % RAM, chunk);
                }
                double readMiBs = mibPerSecond(chunks * CHUNK, System.nanoTime() - t0);
                t0 = System.nanoTime();
                for (long c = 0; c < chunks; c++) {
                    server.dma().write((c * CHUNK) % RAM, chunk);
                }
                double writeMiBs = mibPerSecond(chunks * CHUNK, System.nanoTime() - t0);
                rounds[r] = new Round(readNs, readMiBs, writeMiBs);
            }
            space.remove(region);
        } finally {
            client.close();
            server.awaitDisconnect(Duration.ofSeconds(5));
            server.close();
        }
        Round[] measured = new Round[runs];
        System.arraycopy(rounds, 1, measured, 0, runs); // round 0 warms the JIT up
        return measured;
    }

    static double mibPerSecond(long bytes, long nanos) {
        return bytes / (1024.0 * 1024.0) / (nanos / 1e9);
    }

    /** Connects once the server listens (its socket file appears at bind, a moment before listen). */
    static VfioUserClient connect(Path socket, boolean passFds) throws InterruptedException {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (true) {
            try {
                return VfioUserClient.connect(socket, VfioUserClient.Options.defaults().withDmaFds(passFds));
            } catch (LinuxException e) {
                if (System.nanoTime() - deadline > 0) {
                    throw e;
                }
                Thread.sleep(1);
            }
        }
    }

    static Path tempDir() throws java.io.IOException {
        return Files.createTempDirectory("panamax-bench-");
    }
}
