package dev.panamax.tests;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.harness.GuestRunner;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A guest with a vfio-user disk survives its VMM and its device server (issue 17): the guest writes a known block
 * after block to a virtio-blk disk served by {@code panamax device virtio-blk} in its own process, each write synced;
 * while it writes, {@code panamax ctl} pauses the VM and snapshots it (the device's state moves out by vfio-user
 * migration v2: STOP, STOP_COPY, MIG_DATA_READ); the VMM and the server are killed; a second server starts on the
 * same disk file (another socket), and {@code panamax run --restore --device} resumes the guest, whose device comes
 * back by RESUMING and MIG_DATA_WRITE (a restore that names no device is refused first, status 125). The guest writes
 * on from where it stopped; 5 blocks later the restored VM is live-migrated ({@code panamax ctl migrate}) to a third
 * VMM waiting with {@code --incoming} on a third server, the device's state moving the same way and the pages its
 * server writes into guest RAM found by the server's DMA log, and the source exits 0. There the guest writes on, then prints the md5 of all
 * it wrote (computed from the pattern, no disk read) and of the disk read back, and exits 0. The host file's region
 * must have that md5. Directly where this host has hardware KVM, else nested.
 */
class VfioUserSnapshotEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-vfio-user-snapshot");
    private static final int BLOCKS = 320;
    private static final Pattern WROTE = Pattern.compile("e2e-snapblk wrote (\\d+)");

    /** Block {@code i} as the guest writes it: 511 characters, space padded, and a newline. */
    static byte[] block(int i) {
        return String.format("%-511s\n", "panamax-snapshot-blk " + i).getBytes(StandardCharsets.US_ASCII);
    }

    @Test
    void guestWritesOnAfterRestoreWithAFreshServer() throws Exception {
        Files.createDirectories(WORK);
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(List.of("virtio_pci", "virtio_blk"))
                .build(WORK.resolve("image"));
        GuestDisk disk = new GuestDisk(WORK.resolve("disk.img"), 4 << 20, 17);
        Files.writeString(WORK.resolve("write.sh"), """
                #!/bin/sh
                # Runs in the guest: write block after block, each synced, then report the md5s and exit 0.
                for i in $(seq 1 300); do [ -b /dev/vda ] && break; sleep 0.1; done
                [ -b /dev/vda ] || { echo "e2e-snapblk: FAIL no /dev/vda"; exit 1; }
                n=%d
                i=0
                while [ $i -lt $n ]; do
                    printf "%%-511s\\n" "panamax-snapshot-blk $i" | dd of=/dev/vda bs=512 seek=$i count=1 conv=fsync,notrunc 2>/dev/null \\
                        || { echo "e2e-snapblk: FAIL write $i"; exit 3; }
                    echo "e2e-snapblk wrote $i"
                    i=$((i+1))
                    sleep 0.2
                done
                i=0
                want=$(while [ $i -lt $n ]; do printf "%%-511s\\n" "panamax-snapshot-blk $i"; i=$((i+1)); done | md5sum | cut -d' ' -f1)
                got=$(dd if=/dev/vda bs=512 count=$n iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
                echo "e2e-snapblk done wrote=$want read=$got"
                exit 0
                """.formatted(BLOCKS));
        String img = REPO.relativize(image.dir()).toString();
        String e2e = REPO.relativize(WORK).toString();
        String file = disk.file().toString();
        String script = String.join("\n",
                "snap=/tmp/pmx-usnap; api=/tmp/pmx-uapi.sock; api2=/tmp/pmx-uapi2.sock; mig=/tmp/pmx-umig.sock",
                "s1=/tmp/pmx-ublk1-$$.sock; s2=/tmp/pmx-ublk2-$$.sock; s3=/tmp/pmx-ublk3-$$.sock; rm -rf $snap",
                "serve() { ./panamax device virtio-blk --socket $1 --disk " + file + " & server=$!;"
                        + " for i in $(seq 1 600); do [ -S $1 ] && return 0; sleep 0.1; done; echo 'E2E FAIL: no socket'; return 1; }",
                "serve $s1",
                "./panamax test --image " + img + " --script " + e2e + "/write.sh -m 512M --api-socket $api --timeout 600s"
                        + " --device vfio-user-pci,socket=$s1,timeout=60s > /tmp/urun1.log 2>&1 &",
                "vm=$!",
                "for i in $(seq 1 1200); do grep -q 'e2e-snapblk wrote 10' /tmp/urun1.log && break; kill -0 $vm 2>/dev/null || break; sleep 0.5; done",
                "./panamax ctl --api-socket $api pause; echo \"E2E pause=$?\"",
                "./panamax ctl --api-socket $api snapshot $snap; echo \"E2E snapshot=$?\"",
                "kill -9 $vm; wait $vm 2>/dev/null",
                "kill $server; wait $server; echo \"E2E server1-exit=$?\"",
                "sed 's/^/run1: /' /tmp/urun1.log",
                "ls -ls $snap; cat $snap/manifest.json",
                // The snapshot has a vfio-user device; a restore that names none is refused before anything runs.
                "./panamax run --restore $snap --timeout 60s > /tmp/umis.log 2>&1; echo \"E2E mismatch=$?\"",
                "sed 's/^/mismatch: /' /tmp/umis.log",
                "serve $s2; server2=$server",
                "./panamax run --restore $snap --timeout 600s --api-socket $api2 --device vfio-user-pci,socket=$s2,timeout=60s"
                        + " > /tmp/urun2.log 2>&1 &",
                "vm2=$!",
                // Live migration from the restored VM to a third VMM and a third server, the guest still writing.
                "serve $s3; server3=$server",
                "./panamax run --incoming unix:$mig --timeout 600s --device vfio-user-pci,socket=$s3,timeout=60s"
                        + " > /tmp/urun3.log 2>&1 &",
                "vm3=$!",
                "for i in $(seq 1 1200); do grep -q 'waiting up to' /tmp/urun3.log && break; sleep 0.5; done",
                "for i in $(seq 1 1200); do grep -q 'e2e-snapblk wrote' /tmp/urun2.log && break; kill -0 $vm2 2>/dev/null || break; sleep 0.5; done",
                "n=$(grep -o 'e2e-snapblk wrote [0-9]*' /tmp/urun2.log | head -1 | cut -d' ' -f3); n=$(( ${n:-0} + 5 ))",
                "for i in $(seq 1 1200); do grep -q \"e2e-snapblk wrote $n\\b\" /tmp/urun2.log && break; kill -0 $vm2 2>/dev/null || break; sleep 0.5; done",
                "./panamax ctl --api-socket $api2 migrate $mig; rc=$?; echo \"E2E migrate=$rc\"; [ $rc = 0 ] || kill $vm2 $vm3",
                "wait $vm2; echo \"E2E restore=$?\"",
                "wait $vm3; echo \"E2E destination=$?\"",
                "sed 's/^/run2: /' /tmp/urun2.log",
                "sed 's/^/run3: /' /tmp/urun3.log",
                "kill $server2 $server3; wait $server2; echo \"E2E server2-exit=$?\"; wait $server3; echo \"E2E server3-exit=$?\"",
                "");
        E2eSession session = E2eSession.run(GuestRunner.select(WORK), REPO, script, disk::restore);
        String out = session.output();
        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        Map<String, Integer> status = session.statuses();
        assertEquals(0, status.get("pause"), out);
        assertEquals(0, status.get("snapshot"), out);
        assertEquals(0, status.get("migrate"), out);
        assertEquals(0, status.get("restore"), out); // the restored VM, migrated away: status 0
        assertEquals(0, status.get("destination"), out); // the guest's script ends there with 0
        assertEquals(125, status.get("mismatch"), out);
        assertTrue(CountingGuest.lines(out, "mismatch: ").contains("the snapshot's devices are "), out);

        List<Integer> before = wrote(out, "run1: ");
        List<Integer> restored = wrote(out, "run2: ");
        List<Integer> migrated = wrote(out, "run3: ");
        assertFalse(before.isEmpty() || restored.isEmpty() || migrated.isEmpty(),
                "no writes before the snapshot, after the restore or after the migration:\n" + out);
        // A line the UART was sending at the pause may be cut in two, so one block may go unseen.
        assertTrue(restored.getFirst() > before.getLast() && restored.getFirst() <= before.getLast() + 2,
                "the guest wrote block " + before.getLast() + " before and " + restored.getFirst() + " after the restore:\n" + out);
        assertTrue(migrated.getFirst() > restored.getLast() && migrated.getFirst() <= restored.getLast() + 2,
                "the guest wrote block " + restored.getLast() + " before and " + migrated.getFirst() + " after the migration:\n" + out);
        assertEquals(BLOCKS - 1, migrated.getLast().intValue(), out);
        String run2 = CountingGuest.lines(out, "run2: ");
        String run3 = CountingGuest.lines(out, "run3: ");
        assertFalse(run2.contains("panamax: init reached") || run2.contains("Linux version")
                || run3.contains("panamax: init reached") || run3.contains("Linux version"), "the guest booted again:\n" + out);
        assertTrue(run2.contains("migrated to /tmp/pmx-umig.sock; downtime"), out);
        // The server's writes to guest RAM (used rings, read data) reach the destination through its DMA log.
        assertTrue(run2.contains("vfio-user DMA logging started"), out);

        MessageDigest md5 = MessageDigest.getInstance("MD5");
        for (int i = 0; i < BLOCKS; i++) {
            md5.update(block(i));
        }
        String expected = HexFormat.of().formatHex(md5.digest());
        assertTrue(run3.contains("e2e-snapblk done wrote=" + expected + " read=" + expected),
                "the guest's md5s are not the pattern's (" + expected + "):\n" + out);
        byte[] region = Arrays.copyOf(Files.readAllBytes(disk.file()), BLOCKS * 512);
        assertEquals(expected, HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(region)),
                "the host file does not hold what the guest wrote:\n" + out);
    }

    private static List<Integer> wrote(String out, String prefix) {
        List<Integer> r = new ArrayList<>();
        for (String line : CountingGuest.lines(out, prefix).split("\n")) {
            Matcher m = WROTE.matcher(line);
            if (m.find()) {
                r.add(Integer.parseInt(m.group(1)));
            }
        }
        return r;
    }
}
