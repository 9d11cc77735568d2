package dev.panamax.kvm;

import dev.panamax.core.sys.Errno;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The host checks of {@link Kvm#open} on fake /dev, /sys/module and /proc/cpuinfo trees. */
class KvmHostTest {
    @TempDir
    Path root;

    Path dev;
    Path sysModule;
    Path cpuinfo;

    void host(boolean devKvm, boolean pvmModule, String flags) throws IOException {
        dev = root.resolve("dev/kvm");
        sysModule = root.resolve("sys/module");
        cpuinfo = root.resolve("proc/cpuinfo");
        Files.createDirectories(dev.getParent());
        Files.createDirectories(sysModule.resolve("kvm"));
        Files.createDirectories(cpuinfo.getParent());
        if (devKvm && !Files.exists(dev)) {
            Files.createFile(dev);
        }
        if (pvmModule) {
            Files.createDirectories(sysModule.resolve("kvm_pvm"));
        }
        String cpu = "processor\t: %d\nvendor_id\t: GenuineIntel\nflags\t\t: %s\n\n";
        Files.writeString(cpuinfo, cpu.formatted(0, flags) + cpu.formatted(1, flags));
    }

    @Test
    void missingDeviceSaysRunNested() throws IOException {
        host(false, false, "fpu vme de pse tsc msr pae");
        assertEquals(Optional.of(dev + " not found: this host has no KVM; run nested (see tests/README.md)"),
                Kvm.hostProblem(dev, sysModule, cpuinfo));
        KvmException e = assertThrows(KvmException.class, () -> Kvm.open(dev, sysModule, cpuinfo));
        assertTrue(e.getMessage().startsWith(dev + " not found"), e.getMessage());
    }

    @Test
    void pvmWithoutVmxOrSvmIsRefused() throws IOException {
        host(true, true, "fpu vme de pse tsc msr pae hypervisor lahf_lm");
        String problem = Kvm.hostProblem(dev, sysModule, cpuinfo).orElseThrow();
        assertTrue(problem.startsWith("this " + dev + " is PVM (kvm_pvm), which cannot boot a stock Linux kernel; "), problem);
        KvmException e = assertThrows(KvmException.class, () -> Kvm.open(dev, sysModule, cpuinfo));
        assertEquals(problem, e.getMessage());
    }

    @Test
    void pvmModuleBesideRealVmxIsFine() throws IOException {
        host(true, true, "fpu vme de pse tsc msr pae vmx ept");
        assertEquals(Optional.empty(), Kvm.hostProblem(dev, sysModule, cpuinfo));
    }

    @Test
    void plainKvmHostIsFine() throws IOException {
        host(true, false, "fpu svm npt");
        assertEquals(Optional.empty(), Kvm.hostProblem(dev, sysModule, cpuinfo));
    }

    @Test
    void flagsAreMatchedAsWholeWords() throws IOException {
        host(true, true, "fpu vmx_like svmx");
        assertFalse(Kvm.hasHardwareVirtualization(cpuinfo));
        host(true, true, "fpu svm");
        assertTrue(Kvm.hasHardwareVirtualization(cpuinfo));
    }

    @Test
    void openErrorsReadAsAdvice() {
        Path p = Path.of("/dev/kvm");
        assertEquals("/dev/kvm: permission denied; add this user to the group that owns it (usually 'kvm') or run as root",
                Kvm.openProblem(p, Errno.EACCES));
        assertEquals(Kvm.openProblem(p, Errno.EACCES), Kvm.openProblem(p, Errno.EPERM));
        assertTrue(Kvm.openProblem(p, Errno.ENODEV).contains("kvm_intel or kvm_amd"));
        assertTrue(Kvm.openProblem(p, Errno.EBUSY).startsWith("open /dev/kvm: "), Kvm.openProblem(p, Errno.EBUSY));
        assertTrue(Kvm.openProblem(p, Errno.EBUSY).endsWith("(EBUSY)"));
    }

    @Test
    void openingARegularFileIsNotKvm() throws IOException {
        // A fake /dev/kvm that opens but is no KVM device: KVM_GET_API_VERSION fails with a named ioctl.
        host(true, false, "vmx");
        RuntimeException e = assertThrows(RuntimeException.class, () -> Kvm.open(dev, sysModule, cpuinfo));
        assertTrue(e.getMessage().startsWith("KVM_GET_API_VERSION: "), e.getMessage());
    }
}
