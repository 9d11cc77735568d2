package dev.panamax.kvm;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;

/**
 * {@link KvmSmoke} where this host has /dev/kvm (skipped, and says so, where it has none: the layouts and
 * logic tests still run). On a host with /dev/kvm every failure, PVM included, fails the test.
 */
class KvmSmokeTest {
    @Test
    void realModeGuestDoesPioMmioAndStops() throws Exception {
        Assumptions.assumeTrue(Files.exists(Kvm.DEV_KVM), "no /dev/kvm on this host");
        KvmSmoke.runAll();
    }
}
