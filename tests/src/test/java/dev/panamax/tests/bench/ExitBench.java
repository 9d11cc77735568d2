package dev.panamax.tests.bench;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Libc;
import dev.panamax.kvm.Kvm;
import dev.panamax.kvm.KvmVcpu;
import dev.panamax.kvm.KvmVm;
import dev.panamax.kvm.VcpuStop;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * The vCPU exit round trip through Panamax's {@link KvmVm}/{@link KvmVcpu}: a real-mode guest does N
 * {@code out dx, al} to port 0x510 (KVM_EXIT_IO), one out to 0x511 (a timestamp), N byte writes to
 * guest-physical 0xd0000, which no memslot backs (KVM_EXIT_MMIO), and one out to 0x512 (stop). Each exit
 * goes through {@link KvmVcpu#run}'s loop and the {@link Bus} to a {@link BusDevice}, as in the VMM.
 * Its C twin is {@code tests/src/test/c/exit_bench.c} (same VM setup, same guest bytes).
 *
 * <p>Usage: {@code ExitBench N REPS [LABEL]}; each rep builds a fresh VM (a stopped vCPU cannot run again) and
 * prints {@code BENCH LABEL rep=R port_ns=X mmio_ns=Y} (nanoseconds per exit, host clock; LABEL defaults to
 * {@code exits-java}).
 * Needs /dev/kvm; run by {@code scripts/bench} (nested in L1 where this host has no usable KVM).
 */
public final class ExitBench {
    static final long RAM = 0xd0000;
    static final long CODE = 0x1000;
    static final long MMIO_BASE = 0xd0000;
    static final int COUNT_PORT = 0x510;
    static final int MARK_PORT = 0x511;
    static final int STOP_PORT = 0x512;

    private ExitBench() {
    }

    /** The 16-bit guest, byte for byte as {@code exit_bench.c}'s {@code program()}. */
    static byte[] program(int n) {
        int[] code = {
                0x31, 0xc0,                         // xor ax, ax
                0x8e, 0xd8,                         // mov ds, ax
                0xba, 0x10, 0x05,                   // mov dx, 0x510
                0x66, 0xb9, 0, 0, 0, 0,             // mov ecx, N        (offset 9)
                0xee,                               // 1: out dx, al
                0x66, 0x49,                         // dec ecx
                0x75, 0xfb,                         // jnz 1b
                0xba, 0x11, 0x05,                   // mov dx, 0x511
                0xee,                               // out dx, al        (timestamp)
                0xb8, 0x00, 0xd0,                   // mov ax, 0xd000
                0x8e, 0xd8,                         // mov ds, ax
                0x66, 0xb9, 0, 0, 0, 0,             // mov ecx, N        (offset 29)
                0xa2, 0x00, 0x00,                   // 2: mov [0], al    (MMIO write 0xd0000)
                0x66, 0x49,                         // dec ecx
                0x75, 0xf9,                         // jnz 2b
                0xba, 0x12, 0x05,                   // mov dx, 0x512
                0xee,                               // out dx, al        (stop)
                0xfa, 0xf4, 0xeb, 0xfd};            // cli; hlt; jmp hlt
        byte[] b = new byte[code.length];
        for (int i = 0; i < code.length; i++) {
            b[i] = (byte) code[i];
        }
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(9, n).putInt(29, n);
        return b;
    }

    /** Real mode at 0:CODE, flat 64 KiB segments based at 0 (as KvmSmoke). */
    static X86BootState realMode() {
        Segment code = new Segment(0, 0, 0xffff, 0xb, true, 0, false, true, false, false);
        Segment data = new Segment(0, 0, 0xffff, 0x3, true, 0, false, true, false, false);
        return new X86BootState(CODE, 0x8000, 0, 0x2, 0x60000010L, 0, 0, 0, code, data, 0, 0xffff, 0, 0x3ff);
    }

    /** Counts what the guest sends, so that the JIT cannot drop the device work. */
    static class Sink implements BusDevice {
        long count;
        long sum;

        public long read(long offset, int size) {
            return 0;
        }

        public void write(long offset, int size, long value) {
            count++;
            sum += value;
        }
    }

    /** One run of the guest on a fresh VM; returns {port ns/exit, MMIO ns/exit}. */
    static double[] oneRep(Kvm kvm, int n) {
        MemorySegment host = Libc.mmap(RAM, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0, "exit bench RAM");
        try {
            try (KvmVm vm = kvm.createVm()) {
                AddressSpace space = new AddressSpace();
                space.addListener(vm.memoryListener());
                space.add(new RamRegion("ram", 0, RAM, host, -1, 0));
                byte[] prog = program(n);
                MemorySegment.copy(prog, 0, host, JAVA_BYTE, CODE, prog.length);

                KvmVcpu vcpu = vm.createVcpu(0, 1);
                vcpu.setBootState(realMode());
                long[] marks = new long[2];
                Sink ports = new Sink();
                Sink mmios = new Sink();
                Bus pio = new Bus("pio");
                Bus mmio = new Bus("mmio");
                pio.register(COUNT_PORT, 1, "count", ports);
                pio.register(MARK_PORT, 1, "mark", new Sink() {
                    @Override
                    public void write(long offset, int size, long value) {
                        marks[0] = System.nanoTime();
                    }
                });
                pio.register(STOP_PORT, 1, "stop", new Sink() {
                    @Override
                    public void write(long offset, int size, long value) {
                        marks[1] = System.nanoTime();
                        vcpu.requestStop();
                    }
                });
                mmio.register(MMIO_BASE, 0x1000, "probe", mmios);

                long t0 = System.nanoTime();
                VcpuStop stop = vcpu.run(pio, mmio);
                if (stop.reason() != VcpuStop.Reason.STOPPED || ports.count != n || mmios.count != n) {
                    throw new IllegalStateException("exit bench: vCPU ended " + stop + " after " + ports.count
                            + " port and " + mmios.count + " MMIO exits, wanted " + n + " each");
                }
                return new double[] {(marks[0] - t0) / (double) n, (marks[1] - marks[0]) / (double) n};
            }
        } finally {
            Libc.munmap(host);
        }
    }

    public static void main(String[] args) {
        if (args.length != 2 && args.length != 3) {
            System.err.println("usage: ExitBench N REPS [LABEL]");
            System.exit(2);
        }
        int n = Integer.parseInt(args[0]);
        int reps = Integer.parseInt(args[1]);
        String label = args.length == 3 ? args[2] : "exits-java";
        try (Kvm kvm = Kvm.open()) {
            for (int r = 0; r < reps; r++) {
                double[] ns = oneRep(kvm, n);
                System.out.printf("BENCH %s rep=%d port_ns=%.1f mmio_ns=%.1f%n", label, r, ns[0], ns[1]);
            }
        }
    }
}
