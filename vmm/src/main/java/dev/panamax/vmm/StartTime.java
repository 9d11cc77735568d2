package dev.panamax.vmm;

import java.time.Duration;
import java.time.Instant;
import java.util.Optional;

/**
 * The {@code --stats} line of how long the start took: from the process's start to the first {@code KVM_RUN} of
 * any vCPU. The process's start is {@link ProcessHandle.Info#startInstant()}, which Linux derives from
 * {@code starttime} of {@code /proc/self/stat} (clock ticks since boot, usually 10 ms each: proc(5)), so the
 * line is good to about 10 ms; the first {@code KVM_RUN} is {@link dev.panamax.kvm.KvmVcpu#firstRun()}.
 */
final class StartTime {
    private StartTime() {
    }

    /**
     * @param processStart when the process started, if the system says
     * @param firstKvmRun  when the first vCPU first entered {@code KVM_RUN}, if any did
     * @return e.g. {@code "process start to first KVM_RUN: 412 ms"}; the line says which of the two is unknown
     */
    static String firstKvmRunLine(Optional<Instant> processStart, Optional<Instant> firstKvmRun) {
        if (firstKvmRun.isEmpty()) {
            return "process start to first KVM_RUN: no vCPU ran";
        }
        if (processStart.isEmpty()) {
            return "process start to first KVM_RUN: unknown (no process start time)";
        }
        return "process start to first KVM_RUN: " + Duration.between(processStart.get(), firstKvmRun.get()).toMillis() + " ms";
    }
}
