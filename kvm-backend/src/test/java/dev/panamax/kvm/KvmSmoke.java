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
 * vCPU halted in the kernel ({@code cli; hlt}) stopped from another thread by the signal kick; then a save and
 * restore of the vCPU's and the VM's state into a second VM ({@link #stateRoundTrip}), which runs on from it.
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
        stateRoundTrip();
        dirtyLog();
    }

    /** 16-bit code at 0x1000: write 1 to [0x5000] and 2 to [0x7ffe] (pages 5 and 7), then stop. */
    static final byte[] DIRTY = bytes(
            0x31, 0xc0,                   // xor ax, ax
            0x8e, 0xd8,                   // mov ds, ax
            0xc6, 0x06, 0x00, 0x50, 0x01, // mov byte [0x5000], 1
            0xc6, 0x06, 0xfe, 0x7f, 0x02, // mov byte [0x7ffe], 2
            0xba, 0x01, 0x05,             // mov dx, 0x501
            0xee,                         // out dx, al         (the stop device)
            0xfa, 0xf4, 0xeb, 0xfd);      // cli; hlt; jmp hlt

    /**
     * Dirty page logging (live migration, issue 17): with logging on, the pages a vCPU writes (5 and 7), and only
     * those, are in the slot's bitmap ({@code KVM_GET_DIRTY_LOG}); the read clears it; logging goes off again.
     */
    static void dirtyLog() throws Exception {
        try (Kvm kvm = Kvm.open(); KvmVm vm = kvm.createVm()) {
            MemorySegment host = Libc.mmap(RAM, Libc.PROT_READ | Libc.PROT_WRITE,
                    Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0, "smoke RAM");
            AddressSpace space = new AddressSpace();
            space.addListener(vm.memoryListener());
            RamRegion region = new RamRegion("ram", 0, RAM, host, -1, 0);
            space.add(region);
            MemorySegment.copy(DIRTY, 0, host, JAVA_BYTE, CODE, DIRTY.length);
            KvmVcpu vcpu = vm.createVcpu(0, 1);
            vcpu.setBootState(realMode());
            vm.startDirtyLog();
            check(vm.dirtyLogging(), "dirty logging not on");
            long[] before = vm.dirtyLog(region);
            check(before.length == KvmVm.bitmapWords(RAM), "bitmap of " + before.length + " words");
            VcpuStop stop = runFor(vcpu, pio(new Bus("pio"), vcpu), new Bus("mmio"), 5000);
            check(stop.reason() == VcpuStop.Reason.STOPPED, "dirty-log guest ended " + stop);
            check(host.get(JAVA_BYTE, 0x5000) == 1 && host.get(JAVA_BYTE, 0x7ffe) == 2, "the guest's writes are missing");
            long[] after = vm.dirtyLog(region);
            java.util.BitSet dirty = java.util.BitSet.valueOf(after);
            check(dirty.get(5) && dirty.get(7) && !dirty.get(6), "dirty pages " + dirty);
            check(java.util.BitSet.valueOf(vm.dirtyLog(region)).isEmpty(), "KVM_GET_DIRTY_LOG did not clear");
            vm.stopDirtyLog();
            check(!vm.dirtyLogging(), "dirty logging still on");
            System.out.println("dirty log: pages " + dirty + " after the guest wrote pages 5 and 7; cleared by the read");
        }
    }

    /** Where {@link #SPIN} polls: the guest leaves its loop once this byte is not 0. */
    static final long FLAG = 0x1200;

    /** 16-bit code at 0x1000: AX = 0x1234, BX = 0x5678, spin until [FLAG] != 0, then AL to the serial port and stop. */
    static final byte[] SPIN = bytes(
            0x31, 0xc0,                   // xor ax, ax
            0x8e, 0xd8,                   // mov ds, ax
            0xb8, 0x34, 0x12,             // mov ax, 0x1234
            0xbb, 0x78, 0x56,             // mov bx, 0x5678
            0xba, 0xf8, 0x03,             // mov dx, 0x3f8
            0x80, 0x3e, 0x00, 0x12, 0x00, // loop: cmp byte [0x1200], 0
            0x74, 0xf9,                   // je loop
            0xee,                         // out dx, al         (serial, only after the restore)
            0xba, 0x01, 0x05,             // mov dx, 0x501
            0xee,                         // out dx, al         (the stop device)
            0xfa, 0xf4, 0xeb, 0xfd);      // cli; hlt; jmp hlt

    /**
     * Save and restore (issue 17): vCPU 0 of VM A spins in {@link #SPIN} until kicked (a kick leaves no port I/O
     * half done), gets a few MSRs and the LAPIC's TPR set, and both states are saved; VM B gets a copy of A's RAM with
     * {@link #FLAG} set and the states restored, is saved again and compared piece by piece (one line each), then runs:
     * the restored AX must reach the serial port.
     */
    static void stateRoundTrip() throws Exception {
        try (Kvm kvm = Kvm.open(); KvmVm a = kvm.createVm(); KvmVm b = kvm.createVm()) {
            MemorySegment ramA = smokeRam(a);
            MemorySegment.copy(SPIN, 0, ramA, JAVA_BYTE, CODE, SPIN.length);
            KvmVcpu va = a.createVcpu(0, 1);
            va.setBootState(realMode());
            List<String> serial = new ArrayList<>();
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
            VcpuStop stopA = runFor(va, pio, mmio, 200);
            check(stopA.reason() == VcpuStop.Reason.STOPPED && serial.isEmpty(), "VM A: " + stopA + ", serial " + serial);

            long kernelGsBase = 0xffff888000001000L;
            va.setMsrs(List.of(new KvmVcpu.Msr(0x174, 0x10, "IA32_SYSENTER_CS"),
                    new KvmVcpu.Msr(0xc0000102, kernelGsBase, "IA32_KERNEL_GS_BASE")));
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                MemorySegment lapic = dev.panamax.kvm.bindings.kvm_lapic_state.allocate(arena);
                va.getLapic(lapic);
                lapic.set(java.lang.foreign.ValueLayout.JAVA_INT, APIC_TPR, 0x20);
                va.setLapic(lapic);
            }
            VcpuState sa = va.saveState();
            VmState vmA = a.saveState();
            System.out.printf("state: saved %s, %s%n", sa, vmA);

            MemorySegment ramB = smokeRam(b);
            MemorySegment.copy(ramA, 0, ramB, 0, RAM);
            ramB.set(JAVA_BYTE, FLAG, (byte) 1);
            KvmVcpu vb = b.createVcpu(0, 1);
            vb.restoreState(sa);
            b.restoreState(vmA);
            VcpuState sb = vb.saveState();
            VmState vmB = b.saveState();

            check(java.util.Arrays.equals(sa.regs(), sb.regs()), "regs differ after restore");
            System.out.printf("state: regs equal (rip 0x%x)%n", vb.rip());
            check(java.util.Arrays.equals(sa.sregs(), sb.sregs()), "sregs differ after restore");
            System.out.println("state: sregs equal");
            byte[] la = sa.lapic();
            byte[] lb = sb.lapic();
            for (int i = APIC_TMCCT; i < APIC_TMCCT + 4; i++) { // the timer's current count runs
                la[i] = 0;
                lb[i] = 0;
            }
            check(java.util.Arrays.equals(la, lb), "LAPIC differs after restore");
            check(lb[APIC_TPR] == 0x20, "LAPIC TPR is " + lb[APIC_TPR]);
            System.out.println("state: lapic equal (TPR 0x20)");

            java.util.Map<Integer, Long> ma = msrMap(sa);
            java.util.Map<Integer, Long> mb = msrMap(sb);
            for (int index : List.of(0x174, 0xc0000102, X86VcpuState.MSR_KVM_WALL_CLOCK_NEW,
                    X86VcpuState.MSR_KVM_SYSTEM_TIME_NEW)) {
                check(ma.containsKey(index) && ma.get(index).equals(mb.get(index)),
                        String.format("MSR 0x%x: saved %s, restored %s", index, ma.get(index), mb.get(index)));
            }
            check(ma.get(0x174) == 0x10 && ma.get(0xc0000102) == kernelGsBase, "MSRs set before the save: " + ma);
            long tscA = ma.get(X86VcpuState.MSR_IA32_TSC);
            long tscB = mb.get(X86VcpuState.MSR_IA32_TSC);
            check(Math.abs(tscB - tscA) < 100_000_000_000L, "TSC went from " + tscA + " to " + tscB);
            List<String> differ = new ArrayList<>();
            ma.forEach((index, value) -> {
                if (index != X86VcpuState.MSR_IA32_TSC && !value.equals(mb.get(index))) {
                    differ.add(String.format("0x%x", index));
                }
            });
            System.out.printf("state: %d MSRs saved, %d after restore; SYSENTER_CS, KERNEL_GS_BASE, kvmclock equal; "
                    + "TSC +%d; others differing: %s%n", ma.size(), mb.size(), tscB - tscA, differ);

            long dt = vmB.clock() - vmA.clock();
            check(dt >= 0 && dt < 10_000_000_000L, "kvmclock went from " + vmA.clock() + " to " + vmB.clock());
            System.out.printf("state: kvmclock continued (+%d us)%n", dt / 1000);
            System.out.printf("state: xsave %s, xcrs %s, events %s, debugregs %s, mp_state %s, PICs %s, IOAPIC %s%n",
                    same(sa.xsave(), sb.xsave()), same(sa.xcrs(), sb.xcrs()), same(sa.events(), sb.events()),
                    same(sa.debugregs(), sb.debugregs()), sa.mpState() == sb.mpState() ? "equal" : "differ",
                    same(vmA.picMaster(), vmB.picMaster()) + "/" + same(vmA.picSlave(), vmB.picSlave()),
                    same(vmA.ioapic(), vmB.ioapic()));

            VcpuStop stopB = runFor(vb, pio(pio, vb), mmio, 5000);
            check(serial.equals(List.of("0:1:34")), "VM B after restore: " + stopB + ", serial " + serial);
            System.out.println("state: restored vCPU ran on: serial " + serial + ", " + stopB);
        }
    }

    static final int APIC_TPR = 0x80;
    static final int APIC_TMCCT = 0x390;

    /** 0xd0000 bytes of RAM at 0 in {@code vm}, through its memory listener. */
    static MemorySegment smokeRam(KvmVm vm) {
        MemorySegment host = Libc.mmap(RAM, Libc.PROT_READ | Libc.PROT_WRITE,
                Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0, "smoke RAM");
        AddressSpace space = new AddressSpace();
        space.addListener(vm.memoryListener());
        space.add(new RamRegion("ram", 0, RAM, host, -1, 0));
        return host;
    }

    /** {@code pio} plus the stop device at 0x501 for {@code vcpu}. */
    static Bus pio(Bus pio, KvmVcpu vcpu) {
        pio.register(0x501, 1, "stop", new BusDevice() {
            public long read(long offset, int size) {
                return 0;
            }

            public void write(long offset, int size, long value) {
                vcpu.requestStop();
            }
        });
        return pio;
    }

    /** Runs {@code vcpu} on a platform thread, stopping it after {@code millis} if it has not stopped. */
    static VcpuStop runFor(KvmVcpu vcpu, Bus pio, Bus mmio, long millis) throws Exception {
        CompletableFuture<VcpuStop> stop = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().name("vcpu" + vcpu.id()).start(() -> {
            try {
                stop.complete(vcpu.run(pio, mmio));
            } catch (Throwable e) {
                stop.completeExceptionally(e);
            }
        });
        try {
            return stop.get(millis, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            vcpu.requestStop();
            VcpuStop s = stop.get(5, TimeUnit.SECONDS);
            t.join();
            return s;
        }
    }

    static java.util.Map<Integer, Long> msrMap(VcpuState s) {
        java.util.Map<Integer, Long> m = new java.util.LinkedHashMap<>();
        s.msrs().forEach(msr -> m.put(msr.index(), msr.value()));
        return m;
    }

    static String same(byte[] x, byte[] y) {
        return java.util.Arrays.equals(x, y) ? "equal" : "differ";
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
