package dev.panamax.tests.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The parts of {@link NestedHarness} that need no VM: console parsing ({@link L1Console}), quoting and the generated init ({@link L1Image}), {@link Elf}. */
class NestedHarnessTest {

    private static final Duration T = Duration.ofSeconds(1);

    @Test
    void outputIsWhatLiesBetweenTheMarkers() {
        var lines = List.of("SeaBIOS (version 1.16.2)", "panamax-l1: crw------- 1 0 0 10, 232 /dev/kvm",
                "\u001b[2JPANAMAX-L1-BEGIN:abc", "hello", "", "world",
                "PANAMAX-L1-EXIT:abc=7", "[    7.07] reboot: Power down");
        Result r = L1Console.parse(lines, "abc", T, 0, List.of());
        assertEquals(7, r.exitStatus());
        assertEquals("hello\n\nworld\n", r.output());
        assertEquals(T, r.elapsed());
    }

    @Test
    void aLastLineWithoutNewlineKeepsItsText() {
        var lines = List.of("PANAMAX-L1-BEGIN:n1", "partialPANAMAX-L1-EXIT:n1=0");
        assertEquals(new Result(0, "partial\n", T), L1Console.parse(lines, "n1", T, 0, List.of()));
    }

    @Test
    void markersWithAnotherNonceAreOutput() {
        var lines = List.of("PANAMAX-L1-BEGIN:n1", "PANAMAX-L1-EXIT:other=3", "PANAMAX-L1-EXIT:n1=0");
        Result r = L1Console.parse(lines, "n1", T, 0, List.of());
        assertEquals(0, r.exitStatus());
        assertEquals("PANAMAX-L1-EXIT:other=3\n", r.output());
    }

    @Test
    void initFailureIsReportedWithItsReasonAndTheConsoleTail() {
        var lines = List.of("booting", "insmod: can't insert 'kvm-amd.ko': Operation not supported",
                "PANAMAX-L1-ERROR: insmod kvm-amd (kernel/arch/x86/kvm/kvm-amd.ko) failed");
        var e = assertThrows(NestedHarnessException.class,
                () -> L1Console.parse(lines, "n1", T, 0, List.of("qemu: warning")));
        assertTrue(e.getMessage().startsWith("L1 init failed: insmod kvm-amd (kernel/arch/x86/kvm/kvm-amd.ko) failed\n"),
                e.getMessage());
        assertTrue(e.getMessage().contains("Operation not supported"), e.getMessage());
        assertTrue(e.getMessage().contains("qemu: warning"), e.getMessage());
        assertEquals(lines, e.console());
    }

    @Test
    void panicWithoutMarkerIsAFailureNotAResult() {
        var lines = List.of("PANAMAX-L1-BEGIN:n1", "Kernel panic - not syncing: Fatal exception");
        var e = assertThrows(NestedHarnessException.class, () -> L1Console.parse(lines, "n1", T, 0, List.of()));
        assertTrue(e.getMessage().contains("while the command ran"), e.getMessage());
        assertTrue(e.getMessage().contains("Kernel panic"), e.getMessage());
        var early = assertThrows(NestedHarnessException.class,
                () -> L1Console.parse(List.of("qemu died"), "n1", T, 1, List.of("could not open kernel")));
        assertTrue(early.getMessage().contains("QEMU exit status 1) before starting the command"), early.getMessage());
        assertTrue(early.getMessage().contains("could not open kernel"), early.getMessage());
    }

    @Test
    void malformedStatusIsAFailure() {
        var lines = List.of("PANAMAX-L1-BEGIN:n1", "PANAMAX-L1-EXIT:n1=x");
        assertThrows(NestedHarnessException.class, () -> L1Console.parse(lines, "n1", T, 0, List.of()));
    }

    @Test
    void shellQuoting() {
        assertEquals("'plain'", L1Image.shellQuote("plain"));
        assertEquals("'it'\\''s $HOME `x`'", L1Image.shellQuote("it's $HOME `x`"));
        assertEquals("''", L1Image.shellQuote(""));
    }

    @Test
    void kernelVersionsCompareNumerically() {
        assertTrue(NestedHarness.Builder.compareVersions("6.1.0-9-amd64", "6.1.0-56-amd64") < 0);
        assertTrue(NestedHarness.Builder.compareVersions("6.10.0-1-amd64", "6.9.0-1-amd64") > 0);
        assertEquals(0, NestedHarness.Builder.compareVersions("6.1.0-56-amd64", "6.1.0-56-amd64"));
    }

    @Test
    void elfStaticAndDynamic() throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        assertTrue(Elf.isDynamic(java), java + " should have a PT_INTERP");
        Path busybox = Path.of("/bin/busybox");
        assumeTrue(Files.isRegularFile(busybox), "no /bin/busybox here");
        assertFalse(Elf.isDynamic(busybox), "busybox-static has no PT_INTERP");
        Path notElf = Files.writeString(Files.createTempFile("not-elf", ".sh"), "#!/bin/sh\n");
        try {
            var e = assertThrows(IllegalStateException.class, () -> Elf.isDynamic(notElf));
            assertTrue(e.getMessage().contains("not an ELF-64"), e.getMessage());
        } finally {
            Files.delete(notElf);
        }
    }

    @Test
    void guestCommandValidation() {
        assertThrows(IllegalArgumentException.class, () -> GuestCommand.of("true").withEnv("1BAD", "x"));
        assertThrows(IllegalArgumentException.class, () -> GuestCommand.of("true").withEnv("A-B", "x"));
        assertThrows(IllegalArgumentException.class, () -> GuestCommand.of("true").withTimeout(Duration.ZERO));
        assertThrows(IllegalArgumentException.class,
                () -> new GuestCommand("true", Path.of("relative"), java.util.Map.of(), T));
        assertThrows(IllegalArgumentException.class, () -> new Result(256, "", T));
    }

    @Test
    void initLoadsTheRecipeModulesInDependencyOrder() {
        assumeTrue(Files.isDirectory(Path.of("/lib/modules")) && Files.isDirectory(Path.of("/boot")),
                "no kernel installed here");
        NestedHarness h;
        try {
            h = NestedHarness.builder().build();
        } catch (IllegalStateException e) {
            assumeTrue(false, "nested prerequisites missing: " + e.getMessage());
            return;
        }
        List<String> names = h.modules().stream().map(m -> m.name().replace('_', '-')).toList();
        for (String m : NestedHarness.L1_MODULES) {
            assertTrue(names.contains(m.replace('_', '-')), m + " missing from " + names);
        }
        // Dependencies before dependants (modules.dep): kvm before kvm-amd, ccp before kvm-amd, netfs before 9p.
        assertTrue(names.indexOf("kvm") < names.indexOf("kvm-amd"), names.toString());
        assertTrue(names.indexOf("ccp") < names.indexOf("kvm-amd"), names.toString());
        assertTrue(names.indexOf("netfs") < names.indexOf("9p"), names.toString());
        assertTrue(names.indexOf("vfio-pci-core") < names.indexOf("vfio-pci"), names.toString());
        String init = h.initScript();
        assertTrue(init.startsWith("#!/bin/busybox sh\n"));
        int kvm = init.indexOf("insmod /lib/modules/");
        assertTrue(kvm > 0 && init.indexOf("[ -c /dev/kvm ]") > init.lastIndexOf("insmod /lib/modules/"),
                "the /dev/kvm check must follow every insmod");
    }
}
