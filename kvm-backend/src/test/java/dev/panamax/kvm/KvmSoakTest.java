package dev.panamax.kvm;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KvmSoak}'s command line, and a short soak where this host has hardware KVM; elsewhere that part is skipped
 * here because {@code KvmSoakEndToEndTest} (tests module) runs the full soak nested.
 */
class KvmSoakTest {
    @Test
    void readsTheCycleCount() {
        assertEquals(KvmSoak.DEFAULT_CYCLES, KvmSoak.cycles());
        assertEquals(2000, KvmSoak.cycles("--cycles", "2000"));
        assertThrows(IllegalArgumentException.class, () -> KvmSoak.cycles("--cycles", "0"));
        assertThrows(IllegalArgumentException.class, () -> KvmSoak.cycles("--cycles", "many"));
        assertThrows(IllegalArgumentException.class, () -> KvmSoak.cycles("--cycles"));
        assertThrows(IllegalArgumentException.class, () -> KvmSoak.cycles("200"));
    }

    @Test
    void aShortSoakStaysWithinItsBounds() {
        boolean hardware = Files.exists(Kvm.DEV_KVM) && Kvm.hasHardwareVirtualization(Kvm.PROC_CPUINFO);
        Assumptions.assumeTrue(hardware, "no hardware KVM on this host: KvmSoak runs nested in tests' KvmSoakEndToEndTest");
        String line = KvmSoak.run(20);
        assertTrue(line.startsWith("kvm-soak: 20 cycles, fds "), line);
    }
}
