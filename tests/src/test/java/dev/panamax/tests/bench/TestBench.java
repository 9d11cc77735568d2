package dev.panamax.tests.bench;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.launcher.TestCommand;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The {@code test} piece of the runner script: {@code ./panamax test} of a one-line script, from process start to
 * its verdict (the process's exit, status 0), beside QEMU microvm booting the same kernel with the same script as
 * the image's init job and ending through {@code isa-debug-exit} (status 1: QEMU exits with {@code (0 << 1) | 1}).
 * One image serves both: built with the script as its init job ({@link ImageBuilder#initScript}), so QEMU boots
 * it as it is, and {@code panamax test --image} appends the same script again, as it does for any script.
 * Both get {@link TestCommand#TEST_CMDLINE}, 1 vCPU and {@value Bench#MEMORY}; times from L1's clock.
 */
final class TestBench {
    static final String PANAMAX_TEST = "./panamax test --image \"$IT\" --script \"$ST\" -c 1 -m " + Bench.MEMORY + " --timeout 300s";
    static final String QEMU_MICROVM_TEST = Bench.QEMU_MICROVM.replace("\"$K\"", "\"$KT\"").replace("\"$I\"", "\"$ITI\"");

    /**
     * {@code verdict LABEL CMDLINE STATUS 'COMMAND'}: L1's clock from just before COMMAND to its exit; prints
     * {@code BENCH LABEL verdict_ns=N} when it exits with STATUS, else a {@code BENCH-FAILED} line; then its output.
     */
    static final String VERDICT_FUNCTION = """
            verdict() {
                label=$1; cmd=$2; want=$3; run=$4
                t0=$(now)
                eval "$run" </dev/null >/tmp/panamax-bench-verdict.log 2>&1
                rc=$?
                t=$(( $(now) - t0 ))
                if [ $rc = $want ]; then echo "BENCH $label verdict_ns=$t"; else echo "BENCH-FAILED $label status=$rc (want $want)"; fi
                sed "s/^/  $label| /" /tmp/panamax-bench-verdict.log
            }
            """;

    private TestBench() {
    }

    /** Builds the script and image under {@link Bench#WORK}, and returns this piece's part of the runner script. */
    static String script(int runs) throws Exception {
        Path script = Bench.WORK.resolve("test-script.sh");
        Files.writeString(script, "#!/bin/sh\necho hello\n");
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).initScript(script).build(Bench.WORK.resolve("image-test"));
        StringBuilder sh = new StringBuilder(VERDICT_FUNCTION);
        sh.append("IT=").append(image.dir()).append("\nST=").append(script)
                .append("\nKT=").append(image.kernel()).append("\nITI=").append(image.initramfs())
                .append("\nTCMD='").append(TestCommand.TEST_CMDLINE).append("'\n");
        for (int r = 1; r <= runs; r++) {
            // panamax test's own command line is TEST_CMDLINE already; QEMU gets it through $cmd.
            sh.append("verdict test-panamax \"$TCMD\" 0 '").append(PANAMAX_TEST).append("'\n");
            sh.append("verdict test-microvm \"$TCMD\" 1 '").append(QEMU_MICROVM_TEST).append("'\n");
        }
        return sh.toString();
    }
}
