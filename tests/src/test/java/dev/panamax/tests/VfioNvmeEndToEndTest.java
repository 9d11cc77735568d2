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
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Kernel VFIO passthrough end to end: in the nested L1 VM (QEMU TCG with an emulated {@code intel-iommu} and an
 * emulated NVMe controller backed by a host file), the controller is bound to vfio-pci and assigned to a Panamax
 * guest with {@code --device vfio-pci,host=BDF}. The guest's own {@code nvme} driver reads the whole namespace
 * (its md5 must be the host file's: device-to-memory DMA through the IOMMU) and writes a pattern, which the host
 * then finds in the file (memory-to-device DMA). Twice: over MSI-X, and with {@code pci=nomsi} over INTx, whose
 * EOI goes through the irqfd's resample eventfd. The guest's {@code /proc/interrupts} says which was used.
 * The MSI-X run is held at its end for the control socket: {@code panamax ctl snapshot} must be refused (exit 1,
 * one line naming the device: QEMU's emulated NVMe has no migration v2 driver, which the probe, a real
 * {@code VFIO_DEVICE_FEATURE} ioctl, finds) and the VM run on ({@code ctl status}); then L1 kills it.
 * Then the setup errors: a BDF that does not exist and a device bound to another driver give one clear line and
 * exit status 125.
 *
 * <p>Extended config space (PCIe Base Spec 6.0, 7.6) through ECAM: both L1 devices are PCI Express endpoints behind
 * {@code pcie-root-port}s, and both are assigned to each guest. The NVMe controller has SR-IOV (QEMU 7.1+: an
 * {@code nvme-subsys}, {@code sriov_max_vfs}), which gives it ARI (0x0E) at 0x100 and SR-IOV (0x10) at 0x120,
 * both of which Panamax hides; an {@code e1000e} has AER (0x01) at 0x100 and Device Serial Number (0x03) at 0x140,
 * both passed through. L1 prints each device's chain as its kernel sees it (the test requires the capabilities it
 * relies on, so a QEMU without them fails here rather than passing vacuously), the guest prints the chain from its
 * 4096-byte sysfs {@code config}: it must be L1's chain less the hidden capabilities, well formed (it ends, no
 * loop), and the NVMe's extended space must read all zero (hidden bodies).
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
    /** Extended capability ids Panamax hides from the guest (ExtendedCapabilities.HIDDEN, id 0 aside). */
    private static final Set<Integer> HIDDEN = Set.of(0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13, 0x15, 0x1B, 0x24, 0x2D);
    private static final String NVME_ID = "0x1b36:0x0010";
    private static final String E1000E_ID = "0x8086:0x10d3";
    /**
     * Shell functions (POSIX sh: L1's dash with coreutils, the guest's busybox) that print an extended capability
     * chain. {@code chain CONFIG} walks it from 0x100 and prints " 0xOFF=0xID" per header, then "end" when a next
     * pointer is 0 (or 0x100 reads 0: no capabilities), "loop" at an offset seen before, "bad@OFF" for a pointer outside
     * 0x100..0xFFC. {@code chains PREFIX} prints one line per function with the ids above: its config size, how
     * many bytes past 0xFF are nonzero, and its chain.
     */
    private static final String CHAIN_FUNCTIONS = """
            chain() {
              c=$1; off=256; s=""
              while [ $off -ne 0 ]; do
                { [ $off -ge 256 ] && [ $off -le 4092 ]; } || { echo "$s bad@$off"; return; }
                case "$s" in *" $(printf '0x%%03x' $off)="*) echo "$s loop"; return;; esac
                h=$(od -An -tx4 -j $off -N4 $c | tr -d ' ')
                [ -n "$h" ] || { echo "$s bad@$off"; return; }
                h=$((0x$h))
                { [ $off -eq 256 ] && [ $h -eq 0 ]; } && break
                s="$s $(printf '0x%%03x=0x%%04x' $off $((h & 0xffff)))"
                off=$(((h >> 20) & 0xffc))
              done
              echo "$s end"
            }
            chains() {
              for d in /sys/bus/pci/devices/*; do
                id=$(cat $d/vendor):$(cat $d/device)
                case " %s %s " in *" $id "*) ;; *) continue;; esac
                nz=$(od -An -tx1 -v -j 256 $d/config | tr -s ' ' '\\n' | grep -c '[1-9a-f]')
                echo "$1 chain $id size=$(wc -c < $d/config) ext-nonzero=$nz:$(chain $d/config)"
              done
            }
            """.formatted(NVME_ID, E1000E_ID);
    /** One line of {@code chains}. */
    private static final Pattern CHAIN = Pattern.compile(
            "(\\S.*?) chain (0x\\p{XDigit}{4}:0x\\p{XDigit}{4}) size=(\\d+) ext-nonzero=(\\d+):((?: 0x\\p{XDigit}{3}=0x\\p{XDigit}{4})*) (\\S+)");
    private static GuestImage image;
    private static GuestDisk disk;

    @BeforeAll
    static void prepare() throws IOException {
        Files.createDirectories(WORK);
        image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(GuestModules.NVME).build(WORK.resolve("image"));
        disk = new GuestDisk(DISK, DISK_BYTES, 42);
        Files.writeString(WORK.resolve("nvme.sh"), """
                #!/bin/sh
                # Runs in the guest: print the assigned functions' extended capability chains, read the whole NVMe
                # namespace, then write this run's pattern.
                mode=$(sed -n 's/.*panamax.nvme=\\([a-z]*\\).*/\\1/p' /proc/cmdline)
                %s
                chains "e2e-nvme: $mode"
                for i in $(seq 1 300); do [ -b /dev/nvme0n1 ] && break; sleep 0.1; done
                [ -b /dev/nvme0n1 ] || { echo "e2e-nvme: FAIL no /dev/nvme0n1"; exit 1; }
                echo "e2e-nvme: $mode md5=$(md5sum /dev/nvme0n1 | cut -d' ' -f1)"
                case $mode in msix) sector=%d;; intx) sector=%d;; *) echo "e2e-nvme: FAIL mode"; exit 2;; esac
                printf "PANAMAX-NVME-$mode-OK" | dd of=/dev/nvme0n1 bs=512 seek=$sector conv=fsync 2>/dev/null \\
                    || { echo "e2e-nvme: FAIL write"; exit 3; }
                grep nvme /proc/interrupts | sed "s/^/e2e-nvme: $mode irq /"
                # Held for the control socket's refusal to snapshot (L1 kills this VM once it has its answer).
                grep -q panamax.hold /proc/cmdline && { echo "e2e-nvme: $mode holding"; sleep 600; }
                exit 0
                """.formatted(CHAIN_FUNCTIONS, PATTERN_SECTOR.get("msix"), PATTERN_SECTOR.get("intx")));
    }

    @Test
    void guestDrivesAssignedNvmeOverMsixAndIntx() throws Exception {
        String img = REPO.relativize(image.dir()).toString();
        String script = REPO.relativize(WORK.resolve("nvme.sh")).toString();
        String test = "./panamax test --image " + img + " --script " + script + " -m 512M --timeout 300s";
        String cmdline = "console=ttyS0 quiet panic=-1 reboot=k";
        String devices = "--device vfio-pci,host=$bdf --device vfio-pci,host=$nic";
        String l1 = String.join("\n",
                CHAIN_FUNCTIONS,
                "bdfof() { for d in /sys/bus/pci/devices/*; do [ \"$(cat $d/vendor):$(cat $d/device)\" = $1 ] && basename $d; done; }",
                "bdf=$(bdfof " + NVME_ID + "); nic=$(bdfof " + E1000E_ID + ")",
                "[ -n \"$bdf\" ] || { echo 'E2E FAIL: L1 has no NVMe controller'; exit 1; }",
                "[ -n \"$nic\" ] || { echo 'E2E FAIL: L1 has no e1000e'; exit 1; }",
                "chains L1",
                "for f in $bdf $nic; do echo vfio-pci > /sys/bus/pci/devices/$f/driver_override && echo $f > /sys/bus/pci/drivers_probe; done",
                "echo \"L1 nvme: $bdf driver=$(basename $(readlink /sys/bus/pci/devices/$bdf/driver))\"",
                "echo \"L1 e1000e: $nic driver=$(basename $(readlink /sys/bus/pci/devices/$nic/driver))\"",
                // MSI-X, and held at its end: a snapshot must be refused (QEMU's emulated NVMe has no migration v2
                // driver: the probe is a real VFIO_DEVICE_FEATURE ioctl on L1's kernel), the VM running on.
                "api=/tmp/pmx-nvme-api.sock",
                test + " --api-socket $api --cmdline '" + cmdline + " panamax.nvme=msix panamax.hold' " + devices
                        + " > /tmp/msix.log 2>&1 & vm=$!",
                "for i in $(seq 1 1200); do grep -q 'e2e-nvme: msix holding' /tmp/msix.log && break; kill -0 $vm 2>/dev/null || break; sleep 0.5; done",
                "./panamax ctl --api-socket $api snapshot /tmp/pmx-nvme-snap; echo \"E2E refused=$?\"",
                "[ -e /tmp/pmx-nvme-snap/manifest.json ]; echo \"E2E manifest-exists=$?\"",
                "./panamax ctl --api-socket $api status; echo \"E2E still-running=$?\"",
                "kill $vm; for i in $(seq 1 120); do kill -0 $vm 2>/dev/null || break; sleep 0.5; done; kill -9 $vm 2>/dev/null;"
                        + " wait $vm; echo \"E2E msix-killed=$?\"",
                "cat /tmp/msix.log",
                test + " --cmdline '" + cmdline + " pci=nomsi panamax.nvme=intx' " + devices + "; echo \"E2E intx=$?\"",
                test + " --device vfio-pci,host=0000:00:1f.7; echo \"E2E missing=$?\"",
                "virtio=$(basename $(dirname $(readlink -f /sys/bus/virtio/devices/virtio0)))",
                test + " --device vfio-pci,host=$virtio; echo \"E2E wrong-driver=$?\"",
                "");
        NestedHarness harness = NestedHarness.builder()
                .qemuArgs("-device", "intel-iommu",
                        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
                        "-device", "pcie-root-port,id=rp2,chassis=2,slot=2",
                        "-drive", "if=none,id=nvme0,file=" + DISK + ",format=raw",
                        // SR-IOV needs a subsystem (so a namespace device) and flexible resources for its 2 VFs.
                        "-device", "nvme-subsys,id=subsys0",
                        "-device", "nvme,id=nvmectl,bus=rp1,serial=panamax0,subsys=subsys0,sriov_max_vfs=2,"
                                + "sriov_vq_flexible=4,sriov_vi_flexible=2",
                        "-device", "nvme-ns,drive=nvme0,bus=nvmectl,nsid=1",
                        "-device", "e1000e,bus=rp2,romfile=")
                .build();
        E2eSession session = E2eSession.run(harness, REPO, l1, disk::restore);
        String out = session.output();
        Map<String, Integer> status = session.statuses();

        assertEquals(0, session.result().exitStatus(), "the L1 command itself failed:\n" + out);
        assertTrue(out.contains("L1 nvme: ") && out.contains("L1 e1000e: ")
                        && Pattern.compile("L1 (nvme|e1000e): \\S+ driver=vfio-pci").matcher(out).results().count() == 2,
                "L1 did not bind the NVMe controller and the e1000e to vfio-pci:\n" + out);
        assertEquals(Map.of("refused", 1, "manifest-exists", 1, "still-running", 0, "intx", 0, "missing", 125, "wrong-driver", 125),
                status.entrySet().stream().filter(e -> !e.getKey().equals("msix-killed"))
                        .collect(java.util.stream.Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue)), out);
        assertTrue(out.contains("e2e-nvme: msix holding"), "the MSI-X run did not reach its end:\n" + out);
        assertTrue(Pattern.compile("snapshot refused: device \\S+ \\(vfio-pci at [0-9a-f:.]+\\) cannot be saved: its kernel VFIO"
                + " driver does not offer migration").matcher(out).find(), "no clear refusal naming the NVMe controller:\n" + out);

        // L1's view: what this test relies on is there (else the QEMU is too old: nvme SR-IOV needs 7.1).
        Map<String, Chain> l1Chains = chains(out, "L1");
        Chain l1Nvme = l1Chains.get(NVME_ID);
        Chain l1Nic = l1Chains.get(E1000E_ID);
        assertNotNull(l1Nvme, "L1 printed no chain for the NVMe controller:\n" + out);
        assertNotNull(l1Nic, "L1 printed no chain for the e1000e:\n" + out);
        assertEquals("end", l1Nvme.end(), "L1's NVMe chain is broken:\n" + out);
        assertEquals("end", l1Nic.end(), "L1's e1000e chain is broken:\n" + out);
        assertTrue(l1Nvme.ids().containsAll(List.of(0x0E, 0x10)),
                "L1's NVMe controller has no ARI (0x0E) and SR-IOV (0x10) capabilities (QEMU 7.1+ needed): " + l1Nvme);
        assertTrue(l1Nic.ids().containsAll(List.of(0x01, 0x03)),
                "L1's e1000e has no AER (0x01) and Device Serial Number (0x03) capabilities: " + l1Nic);
        // The guest's view, in both runs: L1's chain less what Panamax hides, well formed, at the same offsets.
        for (String mode : List.of("msix", "intx")) {
            Map<String, Chain> guest = chains(out, "e2e-nvme: " + mode);
            for (Chain l1Chain : List.of(l1Nvme, l1Nic)) {
                Chain g = guest.get(l1Chain.device());
                assertNotNull(g, mode + ": the guest printed no chain for " + l1Chain.device() + ":\n" + out);
                assertEquals(4096, g.size(), mode + ": the guest's config of " + g.device() + " is not 4096 bytes");
                assertEquals("end", g.end(), mode + ": the guest's chain of " + g.device() + " is not well formed: " + g);
                Map<Integer, Integer> expected = new LinkedHashMap<>(l1Chain.capabilities());
                expected.values().removeIf(HIDDEN::contains);
                assertEquals(expected, g.shown(), mode + ": the guest's chain of " + g.device()
                        + " is not L1's less the hidden ones (L1: " + l1Chain + ", guest: " + g + ")");
            }
            assertTrue(guest.get(E1000E_ID).ids().containsAll(List.of(0x01, 0x03)),
                    mode + ": the guest does not see the e1000e's AER and DSN: " + guest.get(E1000E_ID));
            assertTrue(guest.get(NVME_ID).ids().stream().noneMatch(HIDDEN::contains),
                    mode + ": the guest sees a hidden capability of the NVMe controller: " + guest.get(NVME_ID));
            assertEquals(0, guest.get(NVME_ID).extNonzero(),
                    mode + ": the NVMe's hidden capabilities do not read 0 in the guest: " + guest.get(NVME_ID));
        }

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

    /**
     * One function's extended capability chain as {@code chains} printed it.
     *
     * @param device       vendor:device as sysfs spells them
     * @param size         bytes of its sysfs config file
     * @param extNonzero   bytes past 0xFF that are not 0
     * @param capabilities offset to id, in chain order (an id 0 header included)
     * @param end          "end" for a chain that ends, else what went wrong
     */
    record Chain(String device, int size, int extNonzero, Map<Integer, Integer> capabilities, String end) {
        /** @return the ids in chain order */
        List<Integer> ids() {
            return List.copyOf(capabilities.values());
        }

        /** @return the capabilities less an id 0 header (the placeholder at 0x100 before a hidden first one) */
        Map<Integer, Integer> shown() {
            Map<Integer, Integer> m = new LinkedHashMap<>(capabilities);
            m.values().removeIf(id -> id == 0);
            return m;
        }
    }

    /** @return the chains printed with {@code prefix}, by vendor:device (the last line of each wins) */
    private static Map<String, Chain> chains(String out, String prefix) {
        Map<String, Chain> chains = new LinkedHashMap<>();
        Matcher m = CHAIN.matcher(out);
        while (m.find()) {
            if (!m.group(1).endsWith(prefix)) {
                continue;
            }
            Map<Integer, Integer> caps = new LinkedHashMap<>();
            for (String pair : m.group(5).trim().split(" ")) {
                if (!pair.isEmpty()) {
                    String[] kv = pair.split("=");
                    caps.put(Integer.decode(kv[0]), Integer.decode(kv[1]));
                }
            }
            chains.put(m.group(2), new Chain(m.group(2), Integer.parseInt(m.group(3)), Integer.parseInt(m.group(4)),
                    caps, m.group(6)));
        }
        return chains;
    }
}
