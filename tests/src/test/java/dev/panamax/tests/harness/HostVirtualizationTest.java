package dev.panamax.tests.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.tests.harness.HostVirtualization.Mode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HostVirtualizationTest {

    @TempDir
    Path dir;

    private static final String INTEL = """
            processor\t: 0
            vendor_id\t: GenuineIntel
            flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr vmx smx est tm2 ssse3
            bugs\t\t: spectre_v1

            """;
    private static final String AMD = "processor\t: 0\nflags\t\t: fpu vme sse2 ht syscall nx svm extapic\n";
    private static final String NONE = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr hypervisor\n"
            // "vmx" in another field (here a made-up bugs line) must not count; only the flags line does.
            + "vmx flags\t: vnmi preemption_timer\n";

    private HostVirtualization probe(String cpuinfo, boolean kvm, boolean pvm) throws IOException {
        Path c = Files.writeString(dir.resolve("cpuinfo"), cpuinfo);
        Path k = dir.resolve("kvm");
        Path p = dir.resolve("kvm_pvm");
        Files.deleteIfExists(k);
        Files.deleteIfExists(p);
        if (kvm) {
            Files.createFile(k);
        }
        if (pvm) {
            Files.createDirectory(p);
        }
        return HostVirtualization.probe(c, k, p);
    }

    @Test
    void intelWithKvmRunsDirect() throws IOException {
        var h = probe(INTEL, true, false);
        assertEquals(new HostVirtualization(true, true, false), h);
        assertTrue(h.usableKvm());
        assertEquals(Mode.DIRECT, h.chooseMode(null));
        assertEquals(Mode.DIRECT, h.chooseMode(""));
        assertEquals(Mode.NESTED, h.chooseMode("nested"));
        assertEquals(Mode.DIRECT, h.chooseMode(" Direct "));
    }

    @Test
    void amdWithKvmRunsDirect() throws IOException {
        assertEquals(Mode.DIRECT, probe(AMD, true, false).chooseMode(null));
    }

    @Test
    void vmxFlagWithoutDevKvmRunsNested() throws IOException {
        var h = probe(INTEL, false, false);
        assertFalse(h.usableKvm());
        assertEquals(Mode.NESTED, h.chooseMode(null));
        assertTrue(h.describe().contains("kvm_intel/kvm_amd"), h.describe());
    }

    @Test
    void pvmRunsNestedAndRefusesDirect() throws IOException {
        var h = probe(NONE, true, true);
        assertEquals(new HostVirtualization(false, true, true), h);
        assertEquals(Mode.NESTED, h.chooseMode(null));
        var e = assertThrows(IllegalStateException.class, () -> h.chooseMode("direct"));
        assertTrue(e.getMessage().contains("PVM"), e.getMessage());
        assertTrue(e.getMessage().contains("PANAMAX_TEST_MODE=direct"), e.getMessage());
    }

    @Test
    void pvmEvenWithSvmFlagIsNotUsable() throws IOException {
        assertEquals(Mode.NESTED, probe(AMD, true, true).chooseMode(null));
    }

    @Test
    void noKvmAtAllRunsNested() throws IOException {
        var h = probe(NONE, false, false);
        assertEquals(new HostVirtualization(false, false, false), h);
        assertEquals(Mode.NESTED, h.chooseMode(null));
        assertEquals("no /dev/kvm", h.describe());
        assertThrows(IllegalStateException.class, () -> h.chooseMode("direct"));
    }

    @Test
    void missingCpuinfoMeansNoFlag() {
        var h = HostVirtualization.probe(dir.resolve("absent"), dir.resolve("absent-kvm"), dir.resolve("absent-pvm"));
        assertEquals(new HostVirtualization(false, false, false), h);
    }

    @Test
    void badModeIsRejectedWithTheValue() throws IOException {
        var e = assertThrows(IllegalArgumentException.class, () -> probe(AMD, true, false).chooseMode("tcg"));
        assertEquals("PANAMAX_TEST_MODE='tcg' is not 'direct' or 'nested'", e.getMessage());
    }

    @Test
    void selectFollowsTheProbeOnThisHost() {
        String forced = System.getenv(HostVirtualization.MODE_VARIABLE);
        Mode expected;
        try {
            expected = HostVirtualization.probe().chooseMode(forced);
        } catch (RuntimeException e) {
            assertThrows(e.getClass(), GuestRunner::select);
            return;
        }
        GuestRunner runner;
        try {
            runner = GuestRunner.select();
        } catch (IllegalStateException e) {
            // Nested mode on a host without qemu/kernel/busybox: the message must say what to install.
            assertEquals(Mode.NESTED, expected);
            assertTrue(e.getMessage().contains("install") || e.getMessage().contains("PANAMAX_L1_KERNEL"), e.getMessage());
            return;
        }
        assertEquals(expected, runner.mode());
        assertEquals(expected == Mode.DIRECT, runner instanceof DirectRunner);
    }
}
