package dev.panamax.tests.harness;

import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import dev.panamax.kvm.Kvm;

/**
 * What hardware virtualization this host offers, as far as running Panamax's end-to-end tests goes.
 *
 * <p>Three kinds of machine matter (see {@code nested-kvm.md}):
 * <ul>
 *   <li>real hardware virtualization: {@code vmx} (Intel VT-x) or {@code svm} (AMD-V) among the
 *       {@code flags} of {@code /proc/cpuinfo}, and a {@code /dev/kvm} from {@code kvm_intel} or
 *       {@code kvm_amd}; tests run {@linkplain Mode#DIRECT directly};</li>
 *   <li>a {@code /dev/kvm} from PVM ({@code /sys/module/kvm_pvm} present, no vmx/svm flag): it runs a
 *       tiny real-mode loop but a stock Debian kernel hangs after "Probing EDD", so it cannot serve;</li>
 *   <li>no {@code /dev/kvm} at all.</li>
 * </ul>
 * In the last two cases tests run {@linkplain Mode#NESTED nested}, in an L1 VM under QEMU TCG.
 *
 * @param cpuFlagVmxOrSvm {@code vmx} or {@code svm} appears on a {@code flags} line of /proc/cpuinfo
 * @param devKvm          {@code /dev/kvm} exists
 * @param pvm             {@code /sys/module/kvm_pvm} exists
 */
public record HostVirtualization(boolean cpuFlagVmxOrSvm, boolean devKvm, boolean pvm) {

    /** How a {@link GuestRunner} runs commands. */
    public enum Mode {
        /** Plain {@code sh -c} on this host, whose /dev/kvm is real. */
        DIRECT,
        /** Inside an L1 Linux VM under QEMU TCG with emulated AMD SVM; see {@link NestedHarness}. */
        NESTED
    }

    /** The environment variable that forces a mode: {@code direct} or {@code nested}. */
    public static final String MODE_VARIABLE = "PANAMAX_TEST_MODE";


    /** Probes this host: {@code /proc/cpuinfo}, {@code /dev/kvm}, {@code /sys/module/kvm_pvm}. */
    public static HostVirtualization probe() {
        return probe(Path.of("/proc/cpuinfo"), Path.of("/dev/kvm"), Path.of("/sys/module/kvm_pvm"));
    }

    /**
     * Probes with the given paths (for tests with recorded files).
     *
     * @throws UncheckedIOException if {@code cpuinfo} exists but cannot be read
     */
    public static HostVirtualization probe(Path cpuinfo, Path devKvm, Path kvmPvmModule) {
        boolean flag = Files.isReadable(cpuinfo) && Kvm.hasHardwareVirtualization(cpuinfo);
        return new HostVirtualization(flag, Files.exists(devKvm), Files.exists(kvmPvmModule));
    }

    /** True when this host's /dev/kvm is real hardware virtualization that can boot Linux guests. */
    public boolean usableKvm() {
        return cpuFlagVmxOrSvm && devKvm && !pvm;
    }

    /** One line saying what this host has, for logs and error messages. */
    public String describe() {
        if (usableKvm()) {
            return "hardware virtualization (vmx/svm) with /dev/kvm";
        }
        if (pvm && devKvm) {
            return "/dev/kvm is PVM (kvm_pvm, no vmx/svm): it cannot boot a stock Linux guest (hangs after \"Probing EDD\")";
        }
        if (!devKvm) {
            return "no /dev/kvm" + (cpuFlagVmxOrSvm ? " (the CPU has vmx/svm: is kvm_intel/kvm_amd loaded?)" : "");
        }
        return "/dev/kvm present but no vmx/svm flag in /proc/cpuinfo";
    }

    /**
     * Chooses the mode: {@code forced} ({@code "direct"} or {@code "nested"}, case-insensitive) wins when
     * given; otherwise direct when {@link #usableKvm()}, nested when not.
     *
     * @param forced the value of {@value #MODE_VARIABLE}, or null/blank when unset
     * @throws IllegalArgumentException if {@code forced} is neither direct nor nested
     * @throws IllegalStateException    if direct is forced on a host without usable KVM
     */
    public Mode chooseMode(String forced) {
        if (forced == null || forced.isBlank()) {
            return usableKvm() ? Mode.DIRECT : Mode.NESTED;
        }
        return switch (forced.strip().toLowerCase(java.util.Locale.ROOT)) {
            case "nested" -> Mode.NESTED;
            case "direct" -> {
                if (!usableKvm()) {
                    throw new IllegalStateException(MODE_VARIABLE + "=direct but this host has " + describe()
                            + "; unset it or use " + MODE_VARIABLE + "=nested");
                }
                yield Mode.DIRECT;
            }
            default -> throw new IllegalArgumentException(
                    MODE_VARIABLE + "='" + forced + "' is not 'direct' or 'nested'");
        };
    }
}
