package dev.panamax.tests;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.harness.GuestRunner;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * vfio-user end to end: the Java virtio-blk server ({@code panamax device virtio-blk}) serves a disk image in its
 * own process, and a Panamax guest gets it with {@code --device vfio-user-pci,socket=PATH}. The guest's stock
 * {@code virtio_blk} driver reads the whole disk (its md5 must be the host file's) and writes a pattern the host
 * then finds in the file. Three runs: guest RAM shared with the server by fd (DMA_MAP with the memfd) over
 * MSI-X; the same over INTx ({@code pci=nomsi}: the EOI re-arms the line through the resample eventfd, which is
 * the server's INTx unmask eventfd); and with the server forced to reach guest RAM by DMA_READ/DMA_WRITE
 * messages. Then a server that dies under a running guest, with {@code on-error=stop}: Panamax stops with one
 * clear line (status 125) instead of hanging or crashing. Last, one VM with six devices, each behind a
 * {@code MisbehavingServer} that dies, stalls past the timeout, replies with a wrong id, a wrong size, too many
 * fds, or garbage when the guest reads its config space at 0xF0: the VM goes on to its script's end (status
 * 0), each device is marked broken with one line and reads all-ones.
 *
 * <p>Runs where the guest runs: directly with hardware KVM, else nested ({@link GuestRunner#select()}). Under
 * nested emulation on a busy machine, a cold server JVM answered its first message after more than the default
 * 5 s, so the devices here get {@code timeout=60s}; the dying server is seen at once (end of file), not by timeout.
 */
class VfioUserBlkEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-vfio-user");
    private static final int DISK_BYTES = 4 << 20;
    private static final Map<String, Integer> PATTERN_SECTOR = Map.of("fd-msix", 2048, "fd-intx", 3072, "messages-msix", 4096);
    /** The misbehaviours of {@code MisbehavingServer}, one device each. */
    private static final List<String> MODES = List.of("dies", "stall", "wrong-id", "wrong-size", "too-many-fds", "garbage");
    private static GuestImage image;
    private static GuestDisk disk;

    @BeforeAll
    static void prepare() throws IOException {
        Files.createDirectories(WORK);
        image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(List.of("virtio_pci", "virtio_blk"))
                .build(WORK.resolve("image"));
        disk = new GuestDisk(WORK.resolve("blk-disk.img"), DISK_BYTES, 7);
        StringBuilder cases = new StringBuilder();
        PATTERN_SECTOR.forEach((mode, sector) -> cases.append(mode).append(") sector=").append(sector).append(";; "));
        Files.writeString(WORK.resolve("blk.sh"), """
                #!/bin/sh
                # Runs in the guest: read the whole virtio disk, then write this run's pattern.
                mode=$(sed -n 's/.*panamax.blk=\\([a-z-]*\\).*/\\1/p' /proc/cmdline)
                for i in $(seq 1 300); do [ -b /dev/vda ] && break; sleep 0.1; done
                [ -b /dev/vda ] || { echo "e2e-blk: FAIL no /dev/vda"; exit 1; }
                echo "e2e-blk: $mode md5=$(md5sum /dev/vda | cut -d' ' -f1)"
                case $mode in %s *) echo "e2e-blk: FAIL mode"; exit 2;; esac
                printf "PANAMAX-BLK-$mode-OK" | dd of=/dev/vda bs=512 seek=$sector conv=fsync 2>/dev/null \\
                    || { echo "e2e-blk: FAIL write"; exit 3; }
                grep virtio /proc/interrupts | sed "s/^/e2e-blk: $mode irq /"
                exit 0
                """.formatted(cases));
        Files.writeString(WORK.resolve("misbehaving.sh"), """
                #!/bin/sh
                # Runs in the guest: read config offset 0xF0 of each misbehaving server's device (which sets it
                # off), then the vendor/device dword: both must now read all-ones, and the guest goes on.
                n=0
                for d in /sys/bus/pci/devices/*; do
                    [ "$(cat $d/vendor):$(cat $d/device)" = 0x1b36:0x0005 ] || continue
                    at_f0=$(dd if=$d/config bs=4 skip=60 count=1 2>/dev/null | od -An -tx4 | tr -d ' ')
                    id=$(dd if=$d/config bs=4 count=1 2>/dev/null | od -An -tx4 | tr -d ' ')
                    echo "e2e-misbehaving: $(basename $d) 0xf0=$at_f0 id=$id"
                    n=$((n+1))
                done
                echo "e2e-misbehaving: $n devices"
                exit 0
                """);
        Files.writeString(WORK.resolve("blk-forever.sh"), """
                #!/bin/sh
                # Runs in the guest: keep reading the disk until the device goes away under it.
                for i in $(seq 1 300); do [ -b /dev/vda ] && break; sleep 0.1; done
                echo "e2e-blk: reading forever"
                while true; do dd if=/dev/vda of=/dev/null bs=64k iflag=direct 2>/dev/null; done
                """);
    }

    @Test
    void guestDrivesTheJavaVirtioBlkServerOverVfioUser() throws Exception {
        String img = REPO.relativize(image.dir()).toString();
        String test = "./panamax test --image " + img + " --script " + REPO.relativize(WORK.resolve("blk.sh")) + " -m 512M --timeout 300s";
        String cmdline = "console=ttyS0 quiet panic=-1 reboot=k";
        String file = WORK.resolve("blk-disk.img").toString();
        // Interpreted, one GC thread: under QEMU TCG this helper's JVM crashed in C1's code patching (SIGSEGV in
        // Runtime1::patch_code and in C1-compiled JDK code, both runs of one CI session on 2026-12-02, status 134);
        // it serves a handful of messages, so the JIT buys nothing here (start to "listening" 1.3 s vs 1.1 s on the host).
        String java = Path.of(System.getProperty("java.home"), "bin", "java")
                + " -Xint -XX:+UseSerialGC --enable-native-access=ALL-UNNAMED -cp 'tests/target/test-classes:launcher/target/lib/*'";
        StringBuilder misbehaving = new StringBuilder();
        StringBuilder devices = new StringBuilder();
        for (String mode : MODES) {
            misbehaving.append(" --socket /tmp/misbehaving-").append(mode).append(".sock --mode ").append(mode);
            devices.append(" --device vfio-user-pci,socket=/tmp/misbehaving-").append(mode).append(".sock,timeout=10s");
        }
        String l1 = String.join("\n",
                "sock=/tmp/panamax-blk-$$.sock",
                // Starts the server and waits for its socket (the JVM takes seconds under emulation).
                "serve() { ./panamax device virtio-blk --socket $sock --disk " + file + " \"$@\" & server=$!;"
                        + " for i in $(seq 1 600); do [ -S $sock ] && return 0; sleep 0.1; done; echo 'E2E FAIL: no socket'; return 1; }",
                "stop() { kill $server; wait $server; echo \"E2E server-exit=$?\"; }",
                "serve",
                test + " --cmdline '" + cmdline + " panamax.blk=fd-msix' --device vfio-user-pci,socket=$sock,timeout=60s; echo \"E2E fd-msix=$?\"",
                test + " --cmdline '" + cmdline + " pci=nomsi panamax.blk=fd-intx' --device vfio-user-pci,socket=$sock,timeout=60s; echo \"E2E fd-intx=$?\"",
                "stop",
                "serve --dma-messages",
                test + " --cmdline '" + cmdline + " panamax.blk=messages-msix' --device vfio-user-pci,socket=$sock,timeout=60s; echo \"E2E messages-msix=$?\"",
                "stop",
                // A server that dies under a running guest: Panamax must stop the VM with one line, not hang.
                "serve",
                "./panamax test --image " + img + " --script " + REPO.relativize(WORK.resolve("blk-forever.sh"))
                        + " -m 512M --timeout 300s --device vfio-user-pci,socket=$sock,timeout=60s,on-error=stop > /tmp/dies.log 2>&1 & vm=$!",
                // Stops waiting as soon as the VM is gone (a failed attach), not after all 1200 rounds (minutes under TCG).
                "for i in $(seq 1 1200); do grep -q 'reading forever' /tmp/dies.log && break; kill -0 $vm 2>/dev/null || break; sleep 0.1; done",
                "sleep 1; kill -9 $server; wait $vm; echo \"E2E server-dies=$?\"; sed 's/^/dies: /' /tmp/dies.log",
                // One server per misbehaviour (a proxy in front of a real server, set off by a read at 0xF0), all
                // on one VM that must go on: each device breaks on its own, with one line, and reads all-ones.
                java + " dev.panamax.tests.vfiouser.MisbehavingServer " + misbehaving
                        + " > /tmp/misbehaving.log 2>&1 & mb=$!",
                "for i in $(seq 1 1800); do [ $(grep -c listening /tmp/misbehaving.log) = " + MODES.size()
                        + " ] && break; kill -0 $mb 2>/dev/null || break; sleep 0.1; done; cat /tmp/misbehaving.log",
                "./panamax test --image " + img + " --script " + REPO.relativize(WORK.resolve("misbehaving.sh"))
                        + " -m 256M --timeout 300s" + devices + "; echo \"E2E misbehaving=$?\"",
                // The servers' log once more when they failed: a JVM that died (134: SIGABRT) says why there, and
                // E2eSession sees a HotSpot crash only in the session's output.
                "wait $mb; s=$?; echo \"E2E misbehaving-server=$s\"; [ $s = 0 ] || tail -60 /tmp/misbehaving.log",
                "");
        E2eSession session = E2eSession.run(GuestRunner.select(WORK), REPO, l1, disk::restore);
        String out = session.output();
        Map<String, Integer> status = session.statuses();

        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        assertEquals(0, status.get("fd-msix"), out);
        assertEquals(0, status.get("fd-intx"), out);
        assertEquals(0, status.get("messages-msix"), out);
        assertEquals(125, status.get("server-dies"), out);
        for (String mode : List.of("fd-msix", "fd-intx", "messages-msix")) {
            assertTrue(out.contains("e2e-blk: " + mode + " md5=" + disk.md5()), mode + " run read other bytes:\n" + out);
            disk.written(PATTERN_SECTOR.get(mode), "PANAMAX-BLK-" + mode + "-OK");
        }
        assertTrue(disk.matchesFile(), "the host's disk image does not hold what the guests wrote");
        assertTrue(Pattern.compile("e2e-blk: fd-msix irq +\\d+: +[1-9]\\d* +PCI-MSI .*virtio").matcher(out).find(),
                "no MSI-X interrupt counted for virtio in the MSI-X run:\n" + out);
        assertTrue(Pattern.compile("e2e-blk: fd-intx irq +\\d+: +[1-9]\\d* +IO-APIC .*virtio").matcher(out).find(),
                "no INTx interrupt counted for virtio in the pci=nomsi run:\n" + out);
        assertTrue(Pattern.compile("dies: panamax: .*vfio-user.*").matcher(out).find(),
                "no clear line when the server died:\n" + out);

        // The misbehaving servers: the VM went on to its script's end, each device broke once and reads all-ones.
        assertEquals(0, status.get("misbehaving"), out);
        assertEquals(0, status.get("misbehaving-server"), "the misbehaving servers did not all serve and trigger:\n" + out);
        assertTrue(out.contains("e2e-misbehaving: " + MODES.size() + " devices"), out);
        assertEquals(MODES.size(), Pattern.compile("e2e-misbehaving: \\S+ 0xf0=ffffffff id=ffffffff").matcher(out).results().count(), out);
        for (String mode : MODES) {
            assertEquals(1, Pattern.compile("vfio-user device on socket /tmp/misbehaving-" + mode + "\\.sock is broken: ")
                    .matcher(out).results().count(), "not one line for the " + mode + " server:\n" + out);
        }
    }
}
