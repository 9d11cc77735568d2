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
import java.util.Map;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Boots Debian's stock kernel with a busybox initramfs under Panamax, on KVM: directly where this
 * host has vmx/svm, else in the nested L1 VM ({@link GuestRunner#select()}). One runner session
 * holds several boots, since each costs tens of seconds nested under TCG:
 *
 * <ol>
 * <li>{@code kvm-smoke}: the KVM backend alone ({@code KvmSmoke}): a real-mode guest doing port and
 *     string I/O and MMIO, and a halted vCPU stopped from another thread;</li>
 * <li>{@code boot}: 2 vCPUs, 512 MiB, ACPI on; the guest's own script checks its CPU count, memory size and
 *     command line, the PCI host bridge, the ACPI tables (APIC, FACP, DSDT, MCFG, no ACPI error in dmesg) and
 *     ECAM (every PCI function's config space is 4096 bytes); a failure is its verdict through the exit port,
 *     success is {@code poweroff -f} (ACPI S5), after which {@code panamax} exits 0;</li>
 * <li>{@code fail}: a script that exits 3 makes {@code panamax test} exit 3;</li>
 * <li>{@code input}: {@code panamax run} with the image's interactive shell fed from a pipe: the
 *     guest computes what it was asked on its serial console (UART receive path, its interrupt); this guest
 *     boots with {@code acpi=off}, from the MP table;</li>
 * <li>{@code panic}: a guest kernel panic ({@code sysrq c}) gives status 110;</li>
 * <li>{@code timeout}: a guest that never ends is killed at {@code --timeout}: status 124.</li>
 * </ol>
 */
class BootEndToEndTest {
    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path WORK = REPO.resolve("tests/target/e2e");
    private static GuestImage image;

    @BeforeAll
    static void buildImage() throws IOException {
        Files.createDirectories(WORK);
        image = new ImageBuilder(DebianPackages.inDefaultCache()).build(WORK.resolve("image"));
        write("check-machine.sh", """
                #!/bin/sh
                # Runs in the guest: is this the machine Panamax was asked for?
                fail=0
                cpus=$(grep -c ^processor /proc/cpuinfo)
                online=$(cat /sys/devices/system/cpu/online)
                mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
                echo "e2e-guest: cpus=$cpus online=$online memtotal_kb=$mem_kb"
                echo "e2e-guest: cmdline=$(cat /proc/cmdline)"
                [ "$cpus" = 2 ] && [ "$online" = 0-1 ] || { echo "e2e-guest: FAIL want 2 CPUs"; fail=1; }
                # 512 MiB minus what the kernel keeps for itself: well above 400 MiB, never above 512 MiB.
                [ "$mem_kb" -gt 409600 ] && [ "$mem_kb" -le 524288 ] || { echo "e2e-guest: FAIL memory"; fail=1; }
                grep -q 'panamax.e2e=boot-42' /proc/cmdline || { echo "e2e-guest: FAIL cmdline"; fail=1; }
                # The PCI host bridge at 00:00.0, found through configuration mechanism #1.
                bridge=$(cat /sys/bus/pci/devices/0000:00:00.0/vendor /sys/bus/pci/devices/0000:00:00.0/device 2>/dev/null | tr '\\n' ' ')
                echo "e2e-guest: pci 00:00.0 = $bridge"
                [ "$bridge" = "0x8086 0x29c0 " ] || { echo "e2e-guest: FAIL pci host bridge"; fail=1; }
                # ACPI: the tables Panamax wrote, no ACPI error while the kernel read them, and ECAM in use:
                # every PCI function's config file is 4096 bytes (256 without MMCONFIG).
                tables=$(ls /sys/firmware/acpi/tables 2>/dev/null | tr '\n' ' ')
                echo "e2e-guest: acpi tables: $tables"
                for t in APIC FACP DSDT MCFG; do
                    [ -e /sys/firmware/acpi/tables/$t ] || { echo "e2e-guest: FAIL no ACPI table $t"; fail=1; }
                done
                if dmesg | grep -iE 'ACPI( BIOS)? (Error|Warning)|ACPI Exception'; then
                    echo "e2e-guest: FAIL ACPI errors in dmesg"; fail=1
                fi
                dmesg | grep -iE 'MMCONFIG|ECAM' | sed 's/^/e2e-guest: dmesg: /'
                for d in /sys/bus/pci/devices/*; do
                    size=$(wc -c < $d/config)
                    echo "e2e-guest: config ${d##*/} $size bytes"
                    [ "$size" = 4096 ] || { echo "e2e-guest: FAIL ${d##*/} config space is $size bytes"; fail=1; }
                done
                [ $fail = 0 ] || exit $fail
                # All good: switch off through ACPI (S5); panamax exits 0 for it.
                echo "e2e-guest: poweroff"
                poweroff -f
                sleep 60
                exit 9
                """);
        write("exit3.sh", "#!/bin/sh\necho e2e-guest: exiting with 3\nexit 3\n");
        write("panic.sh", "#!/bin/sh\necho c > /proc/sysrq-trigger\nsleep 600\n");
        write("hang.sh", "#!/bin/sh\necho e2e-guest: hanging\nwhile true; do sleep 1; done\n");
    }

    private static void write(String name, String content) throws IOException {
        Files.writeString(WORK.resolve(name), content);
    }

    @Test
    void bootsDebianKernelAndReportsEveryVerdict() throws Exception {
        String img = REPO.relativize(image.dir()).toString();
        String e2e = REPO.relativize(WORK).toString();
        String cmdline = "console=ttyS0 quiet panic=-1 reboot=k";
        String script = String.join("\n",
                Path.of(System.getProperty("java.home"), "bin", "java") + " --enable-native-access=ALL-UNNAMED -cp 'kvm-backend/target/test-classes:launcher/target/lib/*'"
                        + " dev.panamax.kvm.KvmSmoke; echo \"E2E kvm-smoke=$?\"",
                "./panamax test --image " + img + " --script " + e2e + "/check-machine.sh -c 2 -m 512M"
                        + " --cmdline '" + cmdline + " panamax.e2e=boot-42' --timeout 300s; echo \"E2E boot=$?\"",
                "./panamax test --image " + img + " --script " + e2e + "/exit3.sh --timeout 300s; echo \"E2E fail=$?\"",
                "printf 'echo input-$((6*7))-ok\\nexit\\n' | ./panamax run -k " + img + "/vmlinuz -i " + img
                        + "/initramfs.cpio.gz -m 256M --cmdline '" + cmdline + " acpi=off' --timeout 300s; echo \"E2E input=$?\"",
                "./panamax test --image " + img + " --script " + e2e + "/panic.sh --timeout 300s; echo \"E2E panic=$?\"",
                "./panamax test --image " + img + " --script " + e2e + "/hang.sh --timeout 25s; echo \"E2E timeout=$?\"",
                "");
        E2eSession session = E2eSession.run(GuestRunner.select(), REPO, script, () -> { });
        String out = session.output();
        Map<String, Integer> status = session.statuses();

        assertEquals(0, session.result().exitStatus(), "the runner's command itself failed:\n" + out);
        assertEquals(Map.of("kvm-smoke", 0, "boot", 0, "fail", 3, "input", 0, "panic", 110, "timeout", 124), status, out);
        assertTrue(out.contains("e2e-guest: cpus=2 online=0-1"), out);
        assertTrue(out.contains("e2e-guest: pci 00:00.0 = 0x8086 0x29c0"), out);
        assertTrue(out.contains("e2e-guest: config 0000:00:00.0 4096 bytes"), out);
        assertTrue(out.contains("e2e-guest: poweroff"), out);
        assertTrue(out.contains("guest powered off (ACPI S5)"), out);
        assertTrue(out.contains("input-42-ok"), "the guest's shell did not answer piped input:\n" + out);
        assertTrue(out.contains("guest kernel panic: Kernel panic - not syncing: sysrq triggered crash"), out);
        assertTrue(out.contains("guest still running after 25 s: killed"), out);
        // The idle guest's one vCPU is in the guest, not stuck in the VMM; mostly halted in the idle loop.
        assertTrue(Pattern.compile("at the timeout vCPU 0 was at rip 0x[0-9a-f]+, (halted \\(waiting for an interrupt\\)|runnable), after \\d+ exits")
                .matcher(out).find(), "no vCPU state at the timeout:\n" + out);
        assertTrue(out.contains("guest init reached"), out);
    }
}
