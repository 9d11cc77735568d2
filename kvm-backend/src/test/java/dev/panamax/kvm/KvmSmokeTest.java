package dev.panamax.kvm;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;

/**
 * {@link KvmSmoke} where this host has hardware KVM (/dev/kvm and vmx or svm in /proc/cpuinfo). Elsewhere it
 * is skipped here, and says so, because the tests module's end-to-end run executes the same
 * {@code KvmSmoke} inside the nested L1 VM ({@code BootEndToEndTest}), where it must pass.
 */
class KvmSmokeTest {
    @Test
    void realModeGuestDoesPioMmioAndStops() throws Exception {
        boolean hardware = Files.exists(Kvm.DEV_KVM) && Kvm.hasHardwareVirtualization(Kvm.PROC_CPUINFO);
        Assumptions.assumeTrue(hardware, "no hardware KVM on this host: KvmSmoke runs nested in tests' BootEndToEndTest");
        KvmSmoke.runAll();
    }
}
