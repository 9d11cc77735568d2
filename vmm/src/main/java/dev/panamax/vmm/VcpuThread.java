package dev.panamax.vmm;

import dev.panamax.kvm.VcpuStop;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * The body of one vCPU thread: runs the vCPU ({@code KvmVcpu.run}, which calls the device models on this thread)
 * and turns how it ended into a {@link Verdict}. Whatever is thrown ends the machine with one line, an
 * {@link Error} included (an {@code OutOfMemoryError}, a {@code StackOverflowError} in a device model, an
 * {@code InternalError} from a SIGBUS on a mapped segment): a vCPU thread that died silently would leave the VM
 * waiting forever for a verdict. Apart from {@link Machine} so that it can be driven without KVM.
 */
final class VcpuThread {
    private static final Logger log = LoggerFactory.getLogger(VcpuThread.class);
    /** Made in advance: when even the message cannot be built (no heap left), this one still ends the VM. */
    private static final Verdict NO_MEMORY = Verdict.error("a vCPU thread failed and no memory was left to say more");

    private VcpuThread() {
    }

    /**
     * @param id         the vCPU's id, for the message
     * @param run        runs the vCPU until it stops ({@code KvmVcpu.run(pio, mmio)})
     * @param finish     takes the verdict (the machine keeps the first one)
     * @param afterReset the verdict for a reset or power-off of the vCPU, given its detail
     * @param afterTripleFault the verdict for a triple fault ({@code KVM_EXIT_SHUTDOWN}), given its detail
     * @return the thread's body, which never throws
     */
    static Runnable body(int id, Supplier<VcpuStop> run, Consumer<Verdict> finish, Function<String, Verdict> afterReset,
            Function<String, Verdict> afterTripleFault) {
        return () -> {
            try {
                VcpuStop exit = run.get();
                switch (exit.reason()) {
                    case STOPPED -> { } // we asked for it
                    case SHUTDOWN -> finish.accept(afterTripleFault.apply(exit.detail()));
                    case RESET, POWER_OFF, SYSTEM_EVENT -> finish.accept(afterReset.apply(exit.detail()));
                    case CRASH -> finish.accept(Verdict.panic(exit.detail()));
                    case HALTED -> finish.accept(Verdict.error(exit.detail() + " with interrupts off: nothing can wake it"));
                }
            } catch (Throwable t) {
                failed(id, t, finish);
            }
        };
    }

    private static void failed(int id, Throwable t, Consumer<Verdict> finish) {
        Verdict v;
        try {
            // A RuntimeException's message is written for the user; an Error's class says more than its message.
            String what = t instanceof RuntimeException ? String.valueOf(t.getMessage()) : t.toString();
            v = Verdict.error("vCPU " + id + ": " + what);
            log.debug("vCPU {} failed", id, t);
        } catch (Throwable again) {
            v = NO_MEMORY;
        }
        finish.accept(v);
    }
}
