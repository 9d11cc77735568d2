package dev.panamax.tests;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.harness.GuestRunner;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code panamax test --snapshot} (issue 17): in one session, a booted {@code panamax test} for comparison, then the
 * same test with {@code --snapshot} twice: the first boots and saves a snapshot at the guest's init, the second restores
 * it and sends the script over the console; both give the script's status (3) and its output, and the second boots
 * nothing. Then the snapshot's state file is damaged: the third run says the snapshot is rebuilt and gives the same
 * verdict, and a fourth restores the rebuilt one. Each run's wall time is printed ("measured:") for
 * docs/performance.md. The snapshot cache is under /tmp (XDG_CACHE_HOME), which L1 lets write. Directly where this
 * host has hardware KVM, else nested.
 */
class TestSnapshotEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-test-snapshot");
    private static final String RAN = "e2e-snapshot-script ran";

    @Test
    void secondRunRestoresAndADamagedSnapshotIsRebuilt() throws Exception {
        Files.createDirectories(WORK);
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).build(WORK.resolve("image"));
        Files.writeString(WORK.resolve("s.sh"), """
                #!/bin/sh
                echo "%s up $(cut -d' ' -f1 /proc/uptime)"
                exit 3
                """.formatted(RAN));
        String test = "./panamax test --image " + REPO.relativize(image.dir()) + " --script "
                + REPO.relativize(WORK) + "/s.sh -m 256M --timeout 300s";
        StringBuilder script = new StringBuilder(String.join("\n",
                "export XDG_CACHE_HOME=/tmp/pmx-xdg; rm -rf $XDG_CACHE_HOME",
                "run() { name=$1; shift; t0=$(date +%s%N); \"$@\" > /tmp/$name.log 2>&1; s=$?; t1=$(date +%s%N);"
                        + " sed \"s/^/$name: /\" /tmp/$name.log; echo \"time $name $(( (t1 - t0) / 1000000 )) ms\";"
                        + " echo \"E2E $name=$s\"; }",
                "run booted " + test,
                "run first " + test + " --snapshot",
                "ls -ls $XDG_CACHE_HOME/panamax/snapshots/*/",
                "run second " + test + " --snapshot",
                "d=$(ls -d $XDG_CACHE_HOME/panamax/snapshots/*/ | head -1)",
                "printf 'XXXX' | dd of=$d/state.json bs=1 seek=40 conv=notrunc 2>/dev/null",
                "run third " + test + " --snapshot",
                "run fourth " + test + " --snapshot",
                "echo \"snapshots: $(ls $XDG_CACHE_HOME/panamax/snapshots | wc -l)\"",
                ""));
        E2eSession session = E2eSession.run(GuestRunner.select(), REPO, script.toString(), () -> { });
        String out = session.output();
        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        assertEquals(Map.of("booted", 3, "first", 3, "second", 3, "third", 3, "fourth", 3), session.statuses(), out);
        for (String run : new String[]{"booted", "first", "second", "third", "fourth"}) {
            assertTrue(out.contains(run + ": " + RAN), run + " did not run the script:\n" + out);
            assertTrue(out.contains(run + ": panamax: script exited with status 3"), run + ":\n" + out);
        }
        for (String booting : new String[]{"first", "third"}) {
            assertTrue(CountingGuest.lines(out, booting + ": ").contains("panamax: init reached"), booting + " did not boot:\n" + out);
            assertTrue(CountingGuest.lines(out, booting + ": ").contains("snapshot of "), booting + " saved no snapshot:\n" + out);
        }
        for (String restoring : new String[]{"second", "fourth"}) {
            String log = CountingGuest.lines(out, restoring + ": ");
            assertTrue(log.contains("restoring the test snapshot"), restoring + ":\n" + out);
            assertFalse(log.contains("panamax: init reached") || log.contains("Linux version"), restoring + " booted:\n" + out);
        }
        assertTrue(CountingGuest.lines(out, "third: ").contains("rebuilt by booting"), "third run:\n" + out);
        assertTrue(out.contains("snapshots: 1"), out);
        Matcher m = Pattern.compile("time (\\w+) (\\d+) ms").matcher(out);
        while (m.find()) {
            System.out.println("measured: panamax test " + (m.group(1).equals("booted") ? "" : "--snapshot ")
                    + "(" + m.group(1) + " run) start to verdict " + m.group(2) + " ms");
        }
    }
}
