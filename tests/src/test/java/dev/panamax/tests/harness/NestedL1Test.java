package dev.panamax.tests.harness;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Boots real L1 VMs (QEMU TCG, emulated SVM): four boots in all, about 10-20 s each on 2 cores. Skipped
 * only where the nested prerequisites (qemu-system-x86, linux-image-amd64, busybox-static) are missing.
 */
class NestedL1Test {

    private static final Path JAVA = Path.of("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java");

    static NestedHarness harness;
    static Path shared;

    @BeforeAll
    static void harness() throws Exception {
        shared = Files.createDirectories(Path.of("target", "l1-shared").toAbsolutePath());
        try {
            harness = NestedHarness.builder()
                    .cacheDirectory(Path.of("target", "panamax-l1"))
                    .writable(shared)
                    .build();
        } catch (IllegalStateException e) {
            assumeTrue(false, "nested prerequisites missing: " + e.getMessage());
        }
        long t0 = System.nanoTime();
        harness.image();
        System.out.printf("L1 initramfs ready in %d ms (kernel %s, %d modules)%n",
                (System.nanoTime() - t0) / 1_000_000, harness.kernelRelease(), harness.modules().size());
    }

    @Test
    void kvmAndJavaWorkInL1() throws Exception {
        Path marker = shared.resolve("written-in-l1");
        Files.deleteIfExists(marker);
        Result r = harness.run(GuestCommand.of(
                        "test -c /dev/kvm && ls -l /dev/kvm && pwd && echo \"value=$PANAMAX_PROBE\" "
                                + "&& echo from-l1 > " + L1Image.shellQuote(marker.toString())
                                + " && " + JAVA + " -version 2>&1")
                .in(shared).withEnv("PANAMAX_PROBE", "it's ok"));
        System.out.printf("L1 run (boot + java -version) took %d ms%n", r.elapsed().toMillis());
        assertEquals(0, r.exitStatus(), r.output());
        assertTrue(r.output().contains("openjdk version \"25"), r.output());
        assertTrue(r.output().contains("10, 232"), "/dev/kvm is char 10:232: " + r.output());
        assertTrue(r.output().contains(shared + "\n"), "cd into the working directory: " + r.output());
        assertTrue(r.output().contains("value=it's ok\n"), r.output());
        assertEquals("from-l1\n", Files.readString(marker), "writable share");
    }

    @Test
    void exitStatusComesBack() throws Exception {
        Result r = harness.run("echo before; exit 7");
        System.out.printf("L1 run (boot + exit 7) took %d ms%n", r.elapsed().toMillis());
        assertEquals(7, r.exitStatus(), r.output());
        assertEquals("before\n", r.output());
    }

    @Test
    void timeoutKillsL1() throws Exception {
        long t0 = System.nanoTime();
        Result r = harness.run(GuestCommand.of("sleep 600").withTimeout(Duration.ofSeconds(4)));
        System.out.printf("L1 run (timeout 4 s) took %d ms%n", r.elapsed().toMillis());
        assertTrue(r.timedOut(), "status " + r.exitStatus());
        assertTrue(System.nanoTime() - t0 < 30_000_000_000L, "killing L1 took too long");
    }

    @Test
    void initFailureIsAClearError() throws Exception {
        // An L1 without kvm-amd: its init must stop at the /dev/kvm check and say so, not hang or pass.
        NestedHarness noKvm = NestedHarness.builder()
                .cacheDirectory(Path.of("target", "panamax-l1"))
                .modules(java.util.List.of("virtio_pci", "9pnet_virtio", "9p"))
                .build();
        long t0 = System.nanoTime();
        var e = org.junit.jupiter.api.Assertions.assertThrows(NestedHarnessException.class,
                () -> noKvm.run(GuestCommand.of("true").withTimeout(Duration.ofSeconds(120))));
        System.out.printf("L1 run (init failure) took %d ms%n", (System.nanoTime() - t0) / 1_000_000);
        assertTrue(e.getMessage().startsWith("L1 init failed: no /dev/kvm after loading kvm and kvm-amd"), e.getMessage());
        assertTrue(e.getMessage().contains("--- last console lines ---"), e.getMessage());
    }
}
