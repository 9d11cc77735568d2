package dev.panamax.vmm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusDevice;
import dev.panamax.kvm.VcpuStop;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15, defect 9: a vCPU thread ends the VM with a verdict whatever a device model throws on it, an Error
 * included. KVM is not needed: the "vCPU" is a port read on a real {@link Bus}, as the run loop does on an I/O exit.
 */
class VcpuThreadTest {
    private static final int PORT = 0x510;

    /** A device model whose every access throws {@code failure}. */
    private static Bus busWith(Supplier<? extends Throwable> failure) {
        Bus pio = new Bus("pio");
        pio.register(PORT, 1, "broken", new BusDevice() {
            @Override
            public long read(long offset, int size) {
                throw sneaky(failure.get());
            }

            @Override
            public void write(long offset, int size, long value) {
                throw sneaky(failure.get());
            }
        });
        return pio;
    }

    @SuppressWarnings("unchecked")
    private static <T extends Throwable> RuntimeException sneaky(Throwable t) throws T {
        throw (T) t;
    }

    /** Runs the body on a platform thread as Machine does; returns the verdict; nothing may escape the thread. */
    private static Verdict runOnThread(Supplier<VcpuStop> vcpu) throws Exception {
        CompletableFuture<Verdict> verdict = new CompletableFuture<>();
        AtomicReference<Throwable> escaped = new AtomicReference<>();
        Thread t = Thread.ofPlatform().name("vcpu-0").unstarted(
                VcpuThread.body(0, vcpu, verdict::complete, how -> Verdict.reset(how),
                        how -> Verdict.crash(how)));
        t.setUncaughtExceptionHandler((th, e) -> escaped.set(e));
        t.start();
        t.join(5000);
        assertNull(escaped.get(), "nothing escapes a vCPU thread");
        return verdict.get(5, TimeUnit.SECONDS);
    }

    private static Supplier<VcpuStop> readsPort(Bus pio) {
        return () -> {
            pio.read(PORT, 1);
            return new VcpuStop(VcpuStop.Reason.STOPPED, "stopped");
        };
    }

    @Test
    void outOfMemoryErrorInADeviceReadEndsTheVmWithAnError() throws Exception {
        Verdict v = runOnThread(readsPort(busWith(() -> new OutOfMemoryError("test"))));
        assertEquals(Verdict.Kind.ERROR, v.kind());
        assertEquals("vCPU 0: java.lang.OutOfMemoryError: test", v.detail());
        assertTrue(v.exitStatus() != 0);
    }

    @Test
    void stackOverflowErrorInADeviceReadEndsTheVmWithAnError() throws Exception {
        Verdict v = runOnThread(readsPort(busWith(StackOverflowError::new)));
        assertEquals(Verdict.Kind.ERROR, v.kind());
        assertTrue(v.detail().startsWith("vCPU 0: java.lang.StackOverflowError"), v.detail());
        assertTrue(!v.detail().contains("\n"), "one line");
    }

    @Test
    void internalErrorAsFromASigbusEndsTheVmWithAnError() throws Exception {
        Verdict v = runOnThread(readsPort(busWith(() -> new InternalError("a fault occurred in an unsafe memory access"))));
        assertEquals(Verdict.Kind.ERROR, v.kind());
        assertTrue(v.detail().contains("InternalError"), v.detail());
    }

    @Test
    void runtimeExceptionKeepsItsMessage() throws Exception {
        Verdict v = runOnThread(readsPort(busWith(() -> new IllegalStateException("KVM_RUN: EFAULT"))));
        assertEquals("vCPU 0: KVM_RUN: EFAULT", v.detail());
    }

    @Test
    void stopsBecomeTheirVerdicts() throws Exception {
        assertEquals(Verdict.Kind.PANIC, runOnThread(() -> new VcpuStop(VcpuStop.Reason.CRASH, "crash")).kind());
        assertEquals(Verdict.Kind.PANIC, runOnThread(() -> new VcpuStop(VcpuStop.Reason.SHUTDOWN, "triple fault")).kind());
        assertEquals(Verdict.Kind.RESET, runOnThread(() -> new VcpuStop(VcpuStop.Reason.RESET, "reset")).kind());
        assertEquals(Verdict.Kind.ERROR, runOnThread(() -> new VcpuStop(VcpuStop.Reason.HALTED, "HLT")).kind());
    }

    @Test
    void theConsoleInputPumpContainsAnErrorOfItsSink() throws Exception {
        AtomicReference<Throwable> escaped = new AtomicReference<>();
        Thread.UncaughtExceptionHandler old = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((th, e) -> escaped.set(e));
        try {
            CompletableFuture<Void> reached = new CompletableFuture<>();
            Console.pumpInput(new java.io.ByteArrayInputStream(new byte[] {'x'}), (data, n) -> {
                reached.complete(null);
                throw new StackOverflowError();
            });
            reached.get(5, TimeUnit.SECONDS);
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                if (t.getName().equals("console-input")) {
                    t.join(5000);
                }
            }
            assertNull(escaped.get(), "the pump logs one line, nothing escapes");
        } finally {
            Thread.setDefaultUncaughtExceptionHandler(old);
        }
    }

    @Test
    void aTripleFaultIsAResetOnlyWhenTheCommandLineChoseIt() {
        assertTrue(Machine.rebootsByTripleFault("console=ttyS0 reboot=t"));
        assertTrue(Machine.rebootsByTripleFault("reboot=triple quiet"));
        assertTrue(Machine.rebootsByTripleFault("reboot=k,t"));
        assertTrue(Machine.rebootsByTripleFault("reboot=k reboot=w,triple"));
        assertTrue(Machine.rebootsByTripleFault("reboot=t,cold"));
        assertFalse(Machine.rebootsByTripleFault("console=ttyS0 quiet panic=-1 reboot=k"));
        assertFalse(Machine.rebootsByTripleFault("reboot=t,k"));
        assertFalse(Machine.rebootsByTripleFault("reboot=t reboot=acpi"));
        assertFalse(Machine.rebootsByTripleFault("noreboot=t"));
        assertFalse(Machine.rebootsByTripleFault("reboot="));
        assertFalse(Machine.rebootsByTripleFault(""));
        assertFalse(Machine.rebootsByTripleFault(null));
        assertFalse(Machine.rebootsByTripleFault("console=ttyS0"));
    }
}
