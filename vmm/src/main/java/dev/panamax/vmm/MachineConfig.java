package dev.panamax.vmm;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * What to boot and on how much machine: everything {@link Machine#boot} needs. The constructor checks the sizes and
 * throws {@link ConfigException} naming the setting.
 *
 * @param kernel      a bzImage (e.g. Debian's {@code /boot/vmlinuz-*})
 * @param initrd      an initramfs, or {@code null}
 * @param cmdline     the kernel command line
 * @param cpus        number of vCPUs, 1..{@value dev.panamax.firmware.MpTable#MAX_CPUS}: the I/O APIC's id is {@code cpus}, one
 *                    byte in the MP table and in the MADT's I/O APIC structure, and 0xFF is the broadcast id
 * @param memoryBytes guest RAM in bytes (a multiple of 2 MiB)
 * @param timeout     wall-clock limit after which the VM is killed, or {@code null} for none
 * @param consoleInput whether the host's standard input feeds the guest's serial console
 * @param devices     the PCI devices assigned to the guest, in order
 * @param stats       whether to log the VM exit counts of each vCPU when the machine stops
 * @param memoryBackend what host memory backs guest RAM ({@link MemoryBackend#AUTO}: a memfd when a vfio-user device
 *                    is attached, anonymous memory otherwise); {@link MemoryBackend#ANONYMOUS} with a vfio-user device
 *                    is a {@link ConfigException} (its server maps guest RAM through an fd anonymous memory lacks)
 * @param apiSocket   where the control socket ({@link dev.panamax.vmm.api.ApiServer}, {@code --api-socket}) listens,
 *                    or {@code null} for none
 * @param readyScript a script to send to the guest's console when its init is ready for one, with a snapshot then
 *                    ({@link ReadyScript}, {@code panamax test --snapshot}), or {@code null} for none
 */
public record MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes,
                            Duration timeout, boolean consoleInput, List<DeviceConfig> devices, boolean stats,
                            MemoryBackend memoryBackend, Path apiSocket, ReadyScript readyScript) {
    /** A machine without a script for its console. */
    public MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes, Duration timeout,
                         boolean consoleInput, List<DeviceConfig> devices, boolean stats, MemoryBackend memoryBackend,
                         Path apiSocket) {
        this(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, devices, stats, memoryBackend, apiSocket, null);
    }

    /** A machine without a control socket. */
    public MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes, Duration timeout,
                         boolean consoleInput, List<DeviceConfig> devices, boolean stats, MemoryBackend memoryBackend) {
        this(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, devices, stats, memoryBackend, null);
    }

    /** A machine whose guest RAM backend is chosen by its devices ({@link MemoryBackend#AUTO}). */
    public MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes, Duration timeout,
                         boolean consoleInput, List<DeviceConfig> devices, boolean stats) {
        this(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, devices, stats, MemoryBackend.AUTO);
    }

    /** A machine that does not log its exit counts. */
    public MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes, Duration timeout,
                         boolean consoleInput, List<DeviceConfig> devices) {
        this(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, devices, false);
    }

    /** A machine with no assigned devices. */
    public MachineConfig(Path kernel, Path initrd, String cmdline, int cpus, long memoryBytes, Duration timeout,
                         boolean consoleInput) {
        this(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, List.of());
    }

    public MachineConfig {
        devices = List.copyOf(devices);
        if (cpus < 1 || cpus > dev.panamax.firmware.MpTable.MAX_CPUS) {
            throw new ConfigException("cpus", ConfigException.SETTING + " must be between 1 and "
                    + dev.panamax.firmware.MpTable.MAX_CPUS + ", not " + cpus);
        }
        if (memoryBytes < (32L << 20)) {
            throw new ConfigException("memory", ConfigException.SETTING + " must be at least 32M for a Linux guest, not "
                    + memoryBytes + " bytes");
        }
        if (memoryBytes % (2L << 20) != 0) {
            throw new ConfigException("memory", ConfigException.SETTING + " must be a multiple of 2M, not " + memoryBytes + " bytes");
        }
        if (memoryBackend == null) {
            memoryBackend = MemoryBackend.AUTO;
        }
        DeviceConfig.VfioUserPci vfioUser = MemoryBackend.firstVfioUser(devices);
        if (memoryBackend == MemoryBackend.ANONYMOUS && vfioUser != null) {
            throw new ConfigException("memoryBackend", ConfigException.SETTING + " anonymous cannot be used with vfio-user device "
                    + vfioUser.name() + ": its server maps guest RAM through a file descriptor, which anonymous memory"
                    + " has not; use memfd or hugetlbfs (auto picks memfd)");
        }
    }

    /**
     * The machine a snapshot holds ({@link Machine#restore}): its vCPUs, RAM and command line from the snapshot's
     * manifest, no kernel or initrd (guest RAM holds them), the rest as a boot's.
     */
    public static MachineConfig forSnapshot(dev.panamax.vmm.snapshot.SnapshotManifest.Machine saved, Duration timeout,
                                            boolean consoleInput, List<DeviceConfig> devices, boolean stats,
                                            MemoryBackend memoryBackend, Path apiSocket) {
        return new MachineConfig(null, null, saved.cmdline(), saved.cpus(), saved.memoryBytes(), timeout, consoleInput,
                devices, stats, memoryBackend, apiSocket);
    }

    /** @return this machine with {@code script} for its console ({@link ReadyScript}; null for none) */
    public MachineConfig withReadyScript(ReadyScript script) {
        return new MachineConfig(kernel, initrd, cmdline, cpus, memoryBytes, timeout, consoleInput, devices, stats,
                memoryBackend, apiSocket, script);
    }

    /** @return the guest RAM backing this machine gets ({@link MemoryBackend#resolve}) */
    public dev.panamax.core.memory.RamBacking ramBacking() {
        return memoryBackend.resolve(devices);
    }
}
