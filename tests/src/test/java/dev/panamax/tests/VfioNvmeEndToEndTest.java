package dev.panamax.tests;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.harness.NestedHarness;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Kernel VFIO passthrough end to end: in the nested L1 VM (QEMU TCG with an emulated {@code intel-iommu} and an
 * emulated NVMe controller backed by a host file), the controller is bound to vfio-pci and assigned to a Panamax
 * guest with {@code --device vfio-pci,host=BDF}. The guest's own {@code nvme} driver reads the whole namespace
 * (its md5 must be the host file's: device-to-memory DMA through the IOMMU) and writes a pattern, which the host
 * then finds in the file (memory-to-device DMA). Twice: over MSI-X, and with {@code pci=nomsi} over INTx, whose
 * EOI goes through the irqfd's resample eventfd. The guest's {@code /proc/interrupts} says which was used.
 * Then the setup errors: a BDF that does not exist and a device bound to another driver give one clear line and
 * exit status 125.
 *
 * <p>This needs QEMU's emulated IOMMU and NVMe, so it always runs nested, also on hosts with hardware KVM.
 */
class VfioNvmeEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e-vfio");
    private static final Path DISK = WORK.resolve("nvme-disk.img");
    private static final int DISK_BYTES = 8 << 20;
    /** Where each run writes its pattern: 512-byte sectors. */
    private static final Map<String, Integer> PATTERN_SECTOR = Map.of("msix", 2048, "intx", 4096);
    private static GuestImage image;
    private static GuestDisk disk;

    @BeforeAll
    static void prepare() throws IOException {
        Files.createDirectories(WORK);
        image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(GuestModules.NVME).build(WORK.resolve("image"));
        disk = new GuestDisk(DISK, DISK_BYTES, 42);
        Files.writeString(WORK.resolve("nvme.sh"), """
                #!/bin/sh
                # Runs in the guest: read the whole NVMe namespace, then write this run's pattern.
                mode=$(sed -n 's/.*panamax.nvme=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
                for i in $(seq 1 300); do [ -b /dev/nvme0n1 ] && break; sleep 0.1; done
                [ -b /dev/nvme0n1 ] || { echo "e2e-nvme: FAIL no /dev/nvme0n1"; exit 1; }
                echo "e2e-nvme: $mode md5=$(md5sum /dev/nvme0n1 | cut -d' ' -f1)"
                case $mode in msix) sector=%d;; intx) sector=%d;; *) echo "e2e-nvme: FAIL mode"; exit 2;; esac
                printf "PANAMAX-NVME-$mode-OK" | dd of=/dev/nvme0n1 bs=512 seek=$sector conv=fsync 2>/dev/null \\
                    || { echo "e2e-nvme: FAIL write"; exit 3; }
                grep nvme /proc/interrupts | sed "s/^/e2e-nvme: $mode irq /"
                exit 0
                """.formatted(PATTERN_SECTOR.get("msix"), PATTERN_SECTOR.get("intx")));
    }

    @Test
    void guestDrivesAssignedNvmeOverMsixAndIntx() throws Exception {
        String img = REPO.relativize(image.dir()).toString();
        String script = REPO.relativize(WORK.resolve("nvme.sh")).toString();
        String test = "./panamax test --image " + img + " --script " + script + " -m 512M --timeout 300s";
        String cmdline = "console=ttyS0 quiet panic=-1 reboot=k";
        String l1 = String.join("\n",
                "bdf=$(for d in /sys/bus/pci/devices/*; do [ \"$(cat $d/vendor):$(cat $d/device)\" = 0x1b36:0x0010 ] && basename $d; done)",
                "[ -n \"$bdf\" ] || { echo 'E2E FAIL: L1 has no NVMe controller'; exit 1; }",
                "echo vfio-pci > /sys/bus/pci/devices/$bdf/driver_override && echo $bdf > /sys/bus/pci/drivers_probe",
                "echo \"L1 nvme: $bdf driver=$(basename $(readlink /sys/bus/pci/devices/$bdf/driver))\"",
                test + " --cmdline '" + cmdline + " panamax.nvme=msix' --device vfio-pci,host=$bdf; echo \"E2E msix=$?\"",
                test + " --cmdline '" + cmdline + " pci=nomsi panamax.nvme=intx' --device vfio-pci,host=$bdf; echo \"E2E intx=$?\"",
                test + " --device vfio-pci,host=0000:00:1f.7; echo \"E2E missing=$?\"",
                "virtio=$(basename $(dirname $(readlink -f /sys/bus/virtio/devices/virtio0)))",
                test + " --device vfio-pci,host=$virtio; echo \"E2E wrong-driver=$?\"",
                "");
        NestedHarness harness = NestedHarness.builder()
                .qemuArgs("-device", "intel-iommu",
                        "-drive", "if=none,id=nvme0,file=" + DISK + ",format=raw",
                        "-device", "nvme,drive=nvme0,serial=panamax0")
                .build();
        E2eSession session = E2eSession.run(harness, REPO, l1, disk::restore);
        String out = session.output();
        Map<String, Integer> status = session.statuses();

        assertEquals(0, session.result().exitStatus(), "the L1 command itself failed:\n" + out);
        assertTrue(out.contains("driver=vfio-pci"), "L1 did not bind the NVMe controller to vfio-pci:\n" + out);
        assertEquals(Map.of("msix", 0, "intx", 0, "missing", 125, "wrong-driver", 125), status, out);

        // Device to memory: the guest read the namespace as the host has it (before, then after, the first pattern).
        assertTrue(out.contains("e2e-nvme: msix md5=" + disk.md5()), "MSI-X run read other bytes:\n" + out);
        disk.written(PATTERN_SECTOR.get("msix"), "PANAMAX-NVME-msix-OK");
        assertTrue(out.contains("e2e-nvme: intx md5=" + disk.md5()), "INTx run read other bytes:\n" + out);
        // Memory to device: both patterns are in the host's file, and nothing else changed.
        disk.written(PATTERN_SECTOR.get("intx"), "PANAMAX-NVME-intx-OK");
        assertTrue(disk.matchesFile(), "the host's disk image does not hold what the guests wrote");
        // Which interrupts carried it: MSI-X vectors, then the IOAPIC pin (INTx), each with a nonzero count.
        assertTrue(Pattern.compile("e2e-nvme: msix irq +\\d+: +[1-9]\\d* +PCI-MSI .*nvme0q").matcher(out).find(),
                "no MSI-X interrupt counted for nvme in the MSI-X run:\n" + out);
        assertTrue(Pattern.compile("e2e-nvme: intx irq +\\d+: +[1-9]\\d* +IO-APIC .*nvme0q").matcher(out).find(),
                "no INTx interrupt counted for nvme in the pci=nomsi run:\n" + out);
        assertTrue(out.contains("PCI device 0000:00:1f.7 not found"), "no clear error for a missing BDF:\n" + out);
        assertTrue(Pattern.compile("PCI device 0000:00:0\\d\\.0 is bound to virtio-pci, not vfio-pci").matcher(out).find(),
                "no clear error for a device bound to another driver:\n" + out);
    }

}
