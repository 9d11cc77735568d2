package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.core.cpu.Segment;
import dev.panamax.core.cpu.X86BootState;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.Libc;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * A real KVM run of a few real-mode instructions: port output (single and {@code rep outsb}), an MMIO
 * write and read, a stop requested by the guest through a device (on the vCPU thread), then a second
 * vCPU halted in the kernel ({@code cli; hlt}) stopped from another thread by the signal kick.
 * Needs /dev/kvm; {@code KvmSmokeTest} runs it where there is one, and {@link #main} runs it by hand.
 */
public final class KvmSmoke {
    /** RAM below the MMIO probe, so that 0xd0000 is not backed by a memslot and traps. */
    static final long RAM = 0xd0000;
    static final long CODE = 0x1000;
    static final long DATA = 0x1100;
    static final long MMIO_BASE = 0xd0000;

    /** 16-bit code at 0x1000; see the comments for each instruction. */
    static final byte[] PROGRAM = bytes(
            0x31, 0xc0,                   // xor ax, ax
            0x8e, 0xd8,                   // mov ds, ax
            0xba, 0xf8, 0x03,             // mov dx, 0x3f8
            0xb0, 0x41,                   // mov al, 'A'
            0xee,                         // out dx, al
            0xbe, 0x00, 0x11,             // mov si, 0x1100
            0xb9, 0x03, 0x00,             // mov cx, 3
            0xfc,                         // cld
            0xf3, 0x6e,                   // rep outsb          (one exit, count 3)
            0xb8, 0x00, 0xd0,             // mov ax, 0xd000
            0x8e, 0xd8,                   // mov ds, ax
            0xc6, 0x06, 0x00, 0x00, 0x5a, // mov byte [0], 0x5a (MMIO write 0xd0000)
            0xa0, 0x01, 0x00,             // mov al, [1]        (MMIO read 0xd0001)
            0xee,                         // out dx, al
            0xba, 0x01, 0x05,             // mov dx, 0x501
            0xee,                         // out dx, al         (the stop device)
            0xfa,                         // cli
            0xf4,                         // hlt
            0xeb, 0xfd);                  // jmp hlt

    static final byte[] HALT = bytes(0xfa, 0xf4, 0xeb, 0xfd); // cli; hlt; jmp hlt

    static byte[] bytes(int... v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            b[i] = (byte) v[i];
        }
        return b;
    }

    /** Real mode at 0:CODE, flat 64 KiB segments based at 0. */
    static X86BootState realMode() {
        Segment code = new Segment(0, 0, 0xffff, 0xb, true, 0, false, true, false, false);
        Segment data = new Segment(0, 0, 0xffff, 0x3, true, 0, false, true, false, false);
        return new X86BootState(CODE, 0x8000, 0, 0x2, 0x60000010L, 0, 0, 0, code, data, 0, 0xffff, 0, 0x3ff);
    }

    /** Runs both scenarios; throws AssertionError with what differed. */
    public static void runAll() throws Exception {
        List<String> serial = new ArrayList<>();
        List<String> mmioLog = new ArrayList<>();
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm()) {
            System.out.printf("KVM: %d memslots, kvm_run %d bytes, %d CPUID entries%n",
                    kvm.nrMemslots(), kvm.vcpuMmapSize(), kvm.supportedCpuid().size());
            MemorySegment host = Libc.mmap(RAM, Libc.PROT_READ | Libc.PROT_WRITE,
                    Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0, "smoke RAM");
            AddressSpace space = new AddressSpace();
            space.addListener(vm.memoryListener());
            space.add(new RamRegion("ram", 0, RAM, host, -1, 0));
            MemorySegment.copy(PROGRAM, 0, host, JAVA_BYTE, CODE, PROGRAM.length);
            MemorySegment.copy(bytes('x', 'y', 'z'), 0, host, JAVA_BYTE, DATA, 3);
            MemorySegment.copy(HALT, 0, host, JAVA_BYTE, 0x2000, HALT.length);

            KvmVcpu vcpu0 = vm.createVcpu(0, 2);
            KvmVcpu vcpu1 = vm.createVcpu(1, 2);
            vcpu0.setBootState(realMode());

            Bus pio = new Bus("pio");
            Bus mmio = new Bus("mmio");
            pio.register(0x3f8, 8, "serial", new BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    serial.add(offset + ":" + size + ":" + Long.toHexString(value));
                }
            });
            pio.register(0x501, 1, "stop", new BusDevice() {
                public long read(long offset, int size) {
                    return 0;
                }

                public void write(long offset, int size, long value) {
                    vcpu0.requestStop();
                }
            });
            mmio.register(MMIO_BASE, 0x1000, "probe", new BusDevice() {
                public long read(long offset, int size) {
                    mmioLog.add("r " + offset + ":" + size);
                    return 0x42;
                }

                public void write(long offset, int size, long value) {
                    mmioLog.add("w " + offset + ":" + size + ":" + Long.toHexString(value));
                }
            });

            VcpuStop stop0 = vcpu0.run(pio, mmio);
            check(stop0.reason() == VcpuStop.Reason.STOPPED, "vCPU 0 ended " + stop0);
            check(serial.equals(List.of("0:1:41", "0:1:78", "0:1:79", "0:1:7a", "0:1:42")), "serial saw " + serial);
            check(mmioLog.equals(List.of("w 0:1:5a", "r 1:1")), "MMIO saw " + mmioLog);
            System.out.println("vCPU 0: " + stop0 + ", serial " + serial + ", mmio " + mmioLog);

            // vCPU 1: started by hand at 0x2000 (no SIPI in this test), halts in the kernel, kicked out.
            X86BootState halt = realMode();
            vcpu1.setBootState(new X86BootState(0x2000, halt.rsp(), 0, 2, halt.cr0(), 0, 0, 0, halt.code(), halt.data(),
                    0, 0xffff, 0, 0x3ff));
            vcpu1.setMpState(dev.panamax.kvm.bindings.kvm_h.KVM_MP_STATE_RUNNABLE());
            CompletableFuture<VcpuStop> stop1 = new CompletableFuture<>();
            Thread t = Thread.ofPlatform().name("vcpu1").start(() -> {
                try {
                    stop1.complete(vcpu1.run(pio, mmio));
                } catch (Throwable e) {
                    stop1.completeExceptionally(e);
                }
            });
            Thread.sleep(300);
            check(!stop1.isDone(), "vCPU 1 returned before the kick: " + (stop1.isDone() ? stop1.get() : ""));
            long t0 = System.nanoTime();
            vcpu1.requestStop();
            VcpuStop s1 = stop1.get(5, TimeUnit.SECONDS);
            t.join();
            check(s1.reason() == VcpuStop.Reason.STOPPED, "vCPU 1 ended " + s1);
            System.out.printf("vCPU 1: %s, %d us after requestStop%n", s1, (System.nanoTime() - t0) / 1000);
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        runAll();
        System.out.println("KVM smoke: OK");
    }
}
