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
 * back by RESUMING and MIG_DATA_WRITE. The guest writes on from where it stopped, then prints the md5 of all it wrote
 * (computed from the pattern, no disk read) and of the disk read back, and exits 0. The host file's region must have
 * that md5. Directly where this host has hardware KVM, else nested.
 */
class VfioUserSnapshotEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-vfio-user-snapshot");
    private static final int BLOCKS = 200;
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
                "snap=/tmp/pmx-usnap; api=/tmp/pmx-uapi.sock; s1=/tmp/pmx-ublk1-$$.sock; s2=/tmp/pmx-ublk2-$$.sock; rm -rf $snap",
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
                "serve $s2",
                "./panamax run --restore $snap --timeout 600s --device vfio-user-pci,socket=$s2,timeout=60s > /tmp/urun2.log 2>&1;"
                        + " echo \"E2E restore=$?\"",
                "sed 's/^/run2: /' /tmp/urun2.log",
                "kill $server; wait $server; echo \"E2E server2-exit=$?\"",
                "");
        E2eSession session = E2eSession.run(GuestRunner.select(WORK), REPO, script, disk::restore);
        String out = session.output();
        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        Map<String, Integer> status = session.statuses();
        assertEquals(0, status.get("pause"), out);
        assertEquals(0, status.get("snapshot"), out);
        assertEquals(0, status.get("restore"), out);

        List<Integer> before = wrote(out, "run1: ");
        List<Integer> after = wrote(out, "run2: ");
        assertFalse(before.isEmpty() || after.isEmpty(), "no writes before or after the restore:\n" + out);
        int last = before.getLast();
        int first = after.getFirst();
        // A line the UART was sending at the pause may be cut in two, so one block may go unseen.
        assertTrue(first > last && first <= last + 2, "the guest wrote block " + last + " before and " + first + " after the restore:\n" + out);
        assertEquals(BLOCKS - 1, after.getLast().intValue(), out);
        String run2 = lines(out, "run2: ");
        assertFalse(run2.contains("panamax: init reached") || run2.contains("Linux version"), "the guest booted again:\n" + out);

        MessageDigest md5 = MessageDigest.getInstance("MD5");
        for (int i = 0; i < BLOCKS; i++) {
            md5.update(block(i));
        }
        String expected = HexFormat.of().formatHex(md5.digest());
        assertTrue(run2.contains("e2e-snapblk done wrote=" + expected + " read=" + expected),
                "the guest's md5s are not the pattern's (" + expected + "):\n" + out);
        byte[] region = Arrays.copyOf(Files.readAllBytes(disk.file()), BLOCKS * 512);
        assertEquals(expected, HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(region)),
                "the host file does not hold what the guest wrote:\n" + out);
    }

    private static List<Integer> wrote(String out, String prefix) {
        List<Integer> r = new ArrayList<>();
        for (String line : lines(out, prefix).split("\n")) {
            Matcher m = WROTE.matcher(line);
            if (m.find()) {
                r.add(Integer.parseInt(m.group(1)));
            }
        }
        return r;
    }

    private static String lines(String out, String prefix) {
        StringBuilder b = new StringBuilder();
        for (String line : out.split("\n")) {
            int i = line.indexOf(prefix);
            if (i >= 0) {
                b.append(line.substring(i + prefix.length())).append('\n');
            }
        }
        return b.toString();
    }
}
