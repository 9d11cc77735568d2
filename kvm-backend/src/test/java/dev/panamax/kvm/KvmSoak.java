package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.GuestRam;
import dev.panamax.core.sys.EventFd;
import dev.panamax.core.sys.Footprint;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * The KVM soak (issue 15): {@code --cycles N} (default {@value #DEFAULT_CYCLES}) create/run/destroy cycles of a small
 * guest in this JVM, each going through a VM's whole life: {@code /dev/kvm} opened, a VM (in-kernel irqchip and PIT),
 * 2 MiB of guest RAM as a memfd ({@link GuestRam}) given to KVM as a memory slot by the address space's listener, an
 * eventfd bound as an irqfd, one vCPU run on its own platform thread until the guest stops it through port
 * {@value #STOP_PORT}, then everything closed. After {@value #WARM_UP} warm-up cycles and after the last one (each
 * sample after {@code System.gc()}), the process's fds, threads, memfds and RSS ({@link Footprint}) must be within
 * {@link Footprint.Bounds#SOAK} of each other.
 *
 * <p>Prints {@code kvm-soak: 200 cycles, fds 12->12, threads 9->9, memfds 0->0, rss 61->63 MiB, 14.2 s} and exits 0,
 * or {@code kvm-soak: FAILED ...} naming the bound that broke (or the cycle that failed) and exits 1. Needs
 * /dev/kvm ({@code KvmSoakTest} runs 20 cycles where there is hardware KVM; tests' {@code KvmSoakEndToEndTest} runs 200
 * where the guests run, nested in CI; see docs/security.md):
 * <pre>java --enable-native-access=ALL-UNNAMED -cp 'kvm-backend/target/test-classes:vmm-core/target/test-classes:launcher/target/lib/*' dev.panamax.kvm.KvmSoak --cycles 2000</pre>
 */
public final class KvmSoak {
    static final int DEFAULT_CYCLES = 200;
    /** Cycles before the first sample: class loading, the JIT and the heap settle in these. */
    static final int WARM_UP = 10;
    static final long RAM = 2 << 20;
    static final int STOP_PORT = 0x501;
    /** The irqfd's GSI: an ISA pin nobody else uses here; the guest runs with interrupts off, so it is only queued. */
    static final int IRQFD_GSI = 5;

    /** 16-bit code at {@link KvmSmoke#CODE}: port output, string output of {@link KvmSmoke#DATA}, then the stop port. */
    static final byte[] PROGRAM = KvmSmoke.bytes(
            0xfa,                         // cli
            0x31, 0xc0,                   // xor ax, ax
            0x8e, 0xd8,                   // mov ds, ax
            0xba, 0xf8, 0x03,             // mov dx, 0x3f8
            0xb0, 0x41,                   // mov al, 'A'
            0xee,                         // out dx, al
            0xbe, 0x00, 0x11,             // mov si, 0x1100
            0xb9, 0x03, 0x00,             // mov cx, 3
            0xfc,                         // cld
            0xf3, 0x6e,                   // rep outsb          (one exit, count 3)
            0xba, 0x01, 0x05,             // mov dx, 0x501
            0xee,                         // out dx, al         (the stop device)
            0xf4,                         // hlt
            0xeb, 0xfd);                  // jmp hlt
    static final String EXPECTED_SERIAL = "Axyz";

    private KvmSoak() {
    }

    /**
     * @return the cycle count of {@code --cycles N}, or {@link #DEFAULT_CYCLES}
     * @throws IllegalArgumentException on anything else, or N below 1
     */
    static int cycles(String... args) {
        if (args.length == 0) {
            return DEFAULT_CYCLES;
        }
        if (args.length == 2 && args[0].equals("--cycles")) {
            try {
                int n = Integer.parseInt(args[1]);
                if (n >= 1) {
                    return n;
                }
            } catch (NumberFormatException e) {
                // below
            }
        }
        throw new IllegalArgumentException("usage: KvmSoak [--cycles N], N >= 1 (default " + DEFAULT_CYCLES + ")");
    }

    /** One create/run/destroy cycle; throws AssertionError (or KVM's exception) naming what went wrong. */
    static void cycle() throws Exception {
        StringBuilder serial = new StringBuilder();
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm()) {
            AddressSpace space = new AddressSpace();
            space.addListener(vm.memoryListener());
            try (GuestRam ram = new GuestRam(space, RAM); EventFd irq = new EventFd(true)) {
                MemorySegment host = ram.low().host();
                MemorySegment.copy(PROGRAM, 0, host, JAVA_BYTE, KvmSmoke.CODE, PROGRAM.length);
                MemorySegment.copy(KvmSmoke.bytes('x', 'y', 'z'), 0, host, JAVA_BYTE, KvmSmoke.DATA, 3);
                vm.assignIrqfd(irq.fd(), IRQFD_GSI);
                irq.signal();

                KvmVcpu vcpu = vm.createVcpu(0, 1);
                vcpu.setBootState(KvmSmoke.realMode());
                Bus pio = new Bus("pio");
                pio.register(0x3f8, 8, "serial", new BusDevice() {
                    public long read(long offset, int size) {
                        return 0;
                    }

                    public void write(long offset, int size, long value) {
                        serial.append((char) value);
                    }
                });
                pio.register(STOP_PORT, 1, "stop", new BusDevice() {
                    public long read(long offset, int size) {
                        return 0;
                    }

                    public void write(long offset, int size, long value) {
                        vcpu.requestStop();
                    }
                });
                Bus mmio = new Bus("mmio");
                CompletableFuture<VcpuStop> stop = new CompletableFuture<>();
                Thread t = Thread.ofPlatform().name("kvm-soak-vcpu").start(() -> {
                    try {
                        stop.complete(vcpu.run(pio, mmio));
                    } catch (Throwable e) {
                        stop.completeExceptionally(e);
                    }
                });
                VcpuStop s;
                try {
                    s = stop.get(10, TimeUnit.SECONDS);
                } finally {
                    vcpu.requestStop();
                    t.join(5000);
                }
                KvmSmoke.check(!t.isAlive(), "the vCPU thread did not end");
                KvmSmoke.check(s.reason() == VcpuStop.Reason.STOPPED, "the vCPU ended " + s);
                KvmSmoke.check(serial.toString().equals(EXPECTED_SERIAL), "serial saw '" + serial + "'");
                vm.deassignIrqfd(irq.fd(), IRQFD_GSI);
            }
        }
    }

    /**
     * Runs the soak.
     *
     * @return the summary line; it starts {@code kvm-soak: FAILED} when a bound broke or a cycle failed
     */
    static String run(int cycles) {
        long t0 = System.nanoTime();
        int done = 0;
        try {
            for (int i = 0; i < WARM_UP; i++) {
                cycle();
            }
            Footprint before = Footprint.afterGc();
            for (; done < cycles; done++) {
                cycle();
                if ((done + 1) % 50 == 0 && done + 1 < cycles) {
                    // Progress, so that a stall of the machine under the soak shows where it came.
                    System.out.printf("kvm-soak: %d of %d cycles, %.1f s%n", done + 1, cycles, (System.nanoTime() - t0) / 1e9);
                }
            }
            Footprint after = Footprint.afterGc();
            String numbers = cycles + " cycles, " + before.change(after) + String.format(", %.1f s", (System.nanoTime() - t0) / 1e9);
            List<String> broken = new ArrayList<>(before.exceeded(after, Footprint.Bounds.SOAK));
            return broken.isEmpty() ? "kvm-soak: " + numbers : "kvm-soak: FAILED " + String.join(", ", broken) + "; " + numbers;
        } catch (Throwable e) {
            return "kvm-soak: FAILED in cycle " + (done + 1) + " of " + cycles + ": " + e;
        }
    }

    public static void main(String[] args) {
        int cycles;
        try {
            cycles = cycles(args);
        } catch (IllegalArgumentException e) {
            System.out.println(e.getMessage());
            System.exit(2);
            return;
        }
        String line = run(cycles);
        System.out.println(line);
        System.exit(line.startsWith("kvm-soak: FAILED") ? 1 : 0);
    }
}
