package dev.panamax.tests;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.harness.GuestRunner;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A guest survives its VMM process (issue 17): a guest counts in a loop, printing its count, uptime and boot id; the
 * control socket pauses it and writes a snapshot ({@code panamax ctl}); the VMM process is killed; a new process
 * ({@code panamax run --restore}) goes on from the snapshot. The count continues where it stopped, with the same boot
 * id and an uptime that did not restart, and the guest never boots again (no init line); the restored run ends at its
 * timeout (124), the guest still counting. Each {@code panamax ctl} is a JVM start, about 10 s nested, so the guest
 * counts for long enough. Then bad input: a truncated RAM file and a manifest from the future are refused with one
 * line and status 125 before anything runs. Directly where this host has hardware KVM, else nested.
 */
class SnapshotEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-snapshot");

    @Test
    void guestCountsOnAfterRestoreInANewProcess() throws Exception {
        Files.createDirectories(WORK);
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).build(WORK.resolve("image"));
        Files.writeString(WORK.resolve("count.sh"), CountingGuest.SCRIPT);
        String img = REPO.relativize(image.dir()).toString();
        String e2e = REPO.relativize(WORK).toString();
        String script = String.join("\n",
                "snap=/tmp/pmx-snap; sock=/tmp/pmx-api.sock; rm -rf $snap /tmp/pmx-bad*",
                "./panamax test --image " + img + " --script " + e2e + "/count.sh -m 512M --api-socket $sock --timeout 300s"
                        + " > /tmp/run1.log 2>&1 &",
                "pid=$!",
                "for i in $(seq 1 600); do grep -q 'e2e-count 5 ' /tmp/run1.log && break; sleep 0.5; done",
                "./panamax ctl --api-socket $sock status; echo \"E2E status=$?\"",
                "./panamax ctl --api-socket $sock pause; echo \"E2E pause=$?\"",
                "./panamax ctl --api-socket $sock snapshot $snap; echo \"E2E snapshot=$?\"",
                "kill -9 $pid; wait $pid 2>/dev/null",
                "sed 's/^/run1: /' /tmp/run1.log",
                "ls -ls $snap; cat $snap/manifest.json",
                "./panamax run --restore $snap --timeout 40s --stats > /tmp/run2.log 2>&1; echo \"E2E restore=$?\"",
                "sed 's/^/run2: /' /tmp/run2.log",
                "cp -r $snap /tmp/pmx-bad1; truncate -s 1M /tmp/pmx-bad1/ram",
                "./panamax run --restore /tmp/pmx-bad1 --timeout 60s; echo \"E2E truncated=$?\"",
                "cp -r $snap /tmp/pmx-bad2; sed -i 's/\"version\" : 1/\"version\" : 99/' /tmp/pmx-bad2/manifest.json",
                "./panamax run --restore /tmp/pmx-bad2 --timeout 60s; echo \"E2E future=$?\"",
                "");
        E2eSession session = E2eSession.run(GuestRunner.select(), REPO, script, () -> { });
        String out = session.output();
        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        assertEquals(Map.of("status", 0, "pause", 0, "snapshot", 0, "restore", 124, "truncated", 125, "future", 125),
                session.statuses(), out);

        // Uptime (centiseconds) goes on from where it stopped, without restarting or jumping by the time the VM spent
        // paused, snapshotted, killed and restored (the kvmclock is saved when the VM pauses): a line each half
        // second, and 5 s allows for a loaded L1, not for the pause, the kill and the restore.
        CountingGuest.assertLivedOn(out, "run1: ", "run2: ", 500, "restored");
        assertTrue(out.contains("\"format\" : \"panamax-snapshot\""), out);
        assertTrue(out.contains("is damaged") || out.contains("bytes, the manifest says"), out);
        assertTrue(out.contains("snapshot format version 99"), out);
    }
}
