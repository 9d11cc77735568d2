package dev.panamax.tests.vfiouser;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Footprint;
import dev.panamax.core.sys.MemFd;
import dev.panamax.pci.BusBarMapper;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.DmaMemoryListener;
import dev.panamax.vfio.VfioDeviceInfo;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfiouser.client.VfioUserClient;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The vfio-user soak (issue 15): {@code panamax.soak.cycles} (default {@value #DEFAULT_CYCLES}) connect/attach/detach
 * cycles of Panamax's client against its virtio-blk vfio-user server ({@link SoakServer}, in its own JVM) over a real
 * UNIX socket. Each cycle: VERSION negotiation, DMA_MAP of a memfd (through the {@link DmaMemoryListener}, as the
 * VMM maps guest RAM), DEVICE_GET_INFO and every REGION_INFO, the device attached as a PCI function
 * ({@link AssignedPciDevice}: config space, BARs, INTx eventfds given to the server by SET_IRQS), a config read, then
 * detach (reset, interrupts off), DMA_UNMAP and close. After {@value #WARM_UP} warm-up cycles and after the last one,
 * both processes' fds, threads, memfds and RSS ({@link Footprint}) must be within {@link Footprint.Bounds#SOAK}.
 * Longer: {@code mvn -B -o verify -pl tests -am -Dtest=VfioUserSoakTest -Dsurefire.failIfNoSpecifiedTests=false -Dpanamax.soak.cycles=500}.
 */
class VfioUserSoakTest {
    static final int DEFAULT_CYCLES = 50;
    /** Cycles before the first sample: past them the JIT has compiled the hot paths and the heaps have grown to size. */
    static final int WARM_UP = 20;
    /** The DMA-mapped "guest RAM": 64 KiB, a multiple of the server's page size. */
    static final long RAM = 64 << 10;
    /** PCI vendor id of virtio (virtio 1.2, 4.1.2). */
    static final int VIRTIO_VENDOR = 0x1af4;

    @TempDir
    Path dir;

    /** The VM's GSI routing, without KVM: counts what is in place, to check the detach undid it. */
    static final class Routes implements IrqRoutes {
        final AtomicInteger msiRoutes = new AtomicInteger();
        final AtomicInteger irqfds = new AtomicInteger();
        private final AtomicInteger next = new AtomicInteger(24);

        @Override
        public int addMsiRoute(long address, int data) {
            msiRoutes.incrementAndGet();
            return next.getAndIncrement();
        }

        @Override
        public void updateMsiRoute(int gsi, long address, int data) {
        }

        @Override
        public void removeMsiRoute(int gsi) {
            msiRoutes.decrementAndGet();
        }

        @Override
        public void bindIrqfd(int eventFd, int gsi) {
            irqfds.incrementAndGet();
        }

        @Override
        public void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
            irqfds.incrementAndGet();
        }

        @Override
        public void unbindIrqfd(int eventFd, int gsi) {
            irqfds.decrementAndGet();
        }
    }

    @Test
    @Timeout(600)
    void connectAttachDetachCyclesLeakNothingOnEitherSide() throws Exception {
        int cycles = Integer.getInteger("panamax.soak.cycles", DEFAULT_CYCLES);
        Path disk = dir.resolve("disk.img");
        Files.write(disk, new byte[1 << 20]);
        Path socket = dir.resolve("soak.sock");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        // A small heap: its growth cannot hide in the RSS bound (500 cycles: +28 MiB with -Xmx256m, a plateau).
        Process p = new ProcessBuilder(java.toString(), "--enable-native-access=ALL-UNNAMED", "-Xmx64m",
                "-cp", System.getProperty("java.class.path"), SoakServer.class.getName(), socket.toString(), disk.toString())
                .redirectErrorStream(true).start();
        LinkedBlockingQueue<String> lines = new LinkedBlockingQueue<>();
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        Thread pump = Thread.ofPlatform().daemon().name("soak-server-output").start(() -> {
            try (var r = p.inputReader()) {
                for (String line; (line = r.readLine()) != null; ) {
                    log.add(line);
                    if (line.startsWith("soak-server: ")) {
                        lines.add(line);
                    }
                }
            } catch (IOException e) {
                // the process ended
            }
        });
        PrintWriter control = new PrintWriter(p.outputWriter(), true);
        try {
            assertEquals(SoakServer.LISTENING, lines.poll(60, TimeUnit.SECONDS), "the server did not start: " + log);
            long t0 = System.nanoTime();
            for (int i = 0; i < WARM_UP; i++) {
                cycle(socket);
            }
            Footprint client0 = Footprint.afterGc();
            Footprint server0 = serverFootprint(control, lines, log);
            for (int i = 0; i < cycles; i++) {
                try {
                    cycle(socket);
                } catch (Throwable e) {
                    throw new AssertionError("cycle " + (i + 1) + " of " + cycles + " failed; server said " + log, e);
                }
            }
            Footprint client1 = Footprint.afterGc();
            Footprint server1 = serverFootprint(control, lines, log);
            String summary = String.format("vfio-user-soak: %d cycles, client %s; server %s; %.1f s", cycles,
                    client0.change(client1), server0.change(server1), (System.nanoTime() - t0) / 1e9);
            System.out.println(summary);
            List<String> broken = new ArrayList<>();
            client0.exceeded(client1, Footprint.Bounds.SOAK).forEach(b -> broken.add("client " + b));
            server0.exceeded(server1, Footprint.Bounds.SOAK).forEach(b -> broken.add("server " + b));
            assertEquals(List.of(), broken, summary);
            control.println("quit");
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "the server did not exit: " + log);
            assertEquals(0, p.exitValue(), String.join("\n", log));
            pump.join(5000);
            assertTrue(log.stream().noneMatch(l -> l.contains("Exception") || l.contains(" ERROR ")), String.join("\n", log));
        } finally {
            p.destroyForcibly();
        }
    }

    private static Footprint serverFootprint(PrintWriter control, LinkedBlockingQueue<String> lines, List<String> log)
            throws InterruptedException {
        control.println("sample");
        String line = lines.poll(30, TimeUnit.SECONDS);
        assertTrue(line != null && line.contains("footprint "), "no footprint from the server: " + line + "; " + log);
        return Footprint.parse(line);
    }

    /** One connect/attach/detach cycle, checking the answers on the way. */
    static void cycle(Path socket) {
        VfioUserClient client = VfioUserClient.connect(socket, VfioUserClient.Options.defaults()
                .withRequestTimeout(Duration.ofSeconds(10)));
        AddressSpace space = new AddressSpace();
        Routes routes = new Routes();
        try (MemFd ram = new MemFd("soak-ram", RAM)) {
            DmaMemoryListener dma = new DmaMemoryListener(client.dma());
            space.addListener(dma);
            AssignedPciDevice device = null;
            try {
                space.add(new RamRegion("ram", 0, RAM, ram.mapping(), ram.fd(), 0)); // DMA_MAP with the memfd
                VfioDeviceInfo info = client.deviceInfo();
                assertTrue(info.numRegions() > 0, info.toString());
                for (int i = 0; i < info.numRegions(); i++) {
                    VfioRegionInfo r = client.regionInfo(i);
                    assertEquals(i, r.index());
                }
                Bus pio = new Bus("pio");
                Bus mmio = new Bus("mmio");
                PciBus bus = new PciBus(gsi -> level -> { });
                device = AssignedPciDevice.attach(client, bus, space, routes, new BusBarMapper(pio, mmio),
                        new PciBarAllocator(1L << 32, 1L << 36));
                assertEquals(VIRTIO_VENDOR, device.function().configRead(0, 2));
                device.stop(); // detach: reset, interrupts off, BARs out of the guest
                assertEquals(0, routes.irqfds.get(), "irqfds left bound after detach");
                assertEquals(0, routes.msiRoutes.get(), "MSI routes left after detach");
            } finally {
                space.removeListener(dma); // DMA_UNMAP
                if (device != null) {
                    device.close(); // closes the client
                } else {
                    client.close();
                }
            }
        }
    }
}
