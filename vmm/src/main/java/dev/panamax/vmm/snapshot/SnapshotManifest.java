package dev.panamax.vmm.snapshot;

import java.util.List;
import java.util.Map;

/**
 * {@code manifest.json}, the first file of a snapshot directory and the last one written (so a directory without it
 * is no snapshot): what machine the snapshot is of and which files hold it, each with its size and checksum. Format
 * version {@value #VERSION}; a reader refuses a higher version. As JSON (snake_case names):
 * <pre>
 * {"format": "panamax-snapshot", "version": 1, "created_at": "2026-12-01T23:00:00Z",
 *  "machine": {"cpus": 2, "memory_bytes": 536870912, "cmdline": "console=ttyS0", "ram_backing": "ANONYMOUS"},
 *  "devices": [{"name": "vfio-user-0", "kind": "vfio-user-pci", "pci_address": "00:01.0"}],
 *  "files": {"ram": {"bytes": 536870912, "crc32c": "1c2d3e4f"}, "state.json": {"bytes": 70123, "crc32c": "..."}}}
 * </pre>
 *
 * @param format    always {@value #FORMAT}
 * @param version   the format version, {@value #VERSION}
 * @param createdAt when the snapshot was taken (ISO-8601, UTC)
 * @param machine   the machine's shape, which a restore re-creates
 * @param devices   the assigned PCI devices, which the restoring command line must name alike
 * @param files     every other file of the directory by name: {@value #RAM_FILE} ({@link RamFile}) and
 *                  {@value #STATE_FILE} (the vCPUs', the VM's and the device models' state)
 */
public record SnapshotManifest(String format, int version, String createdAt, Machine machine, List<Device> devices,
                               Map<String, FileEntry> files) {
    public static final String FORMAT = "panamax-snapshot";
    public static final int VERSION = 1;
    public static final String MANIFEST_FILE = "manifest.json";
    public static final String RAM_FILE = "ram";
    public static final String STATE_FILE = "state.json";

    /**
     * @param cpus        vCPUs
     * @param memoryBytes guest RAM, bytes
     * @param cmdline     the kernel command line the guest booted with (for the record, and {@code reboot=t})
     * @param ramBacking  what backed guest RAM ({@code ANONYMOUS}, {@code MEMFD}, {@code HUGETLBFS}), for the record
     */
    public record Machine(int cpus, long memoryBytes, String cmdline, String ramBacking) {
    }

    /**
     * @param name       the device's name on the command line ({@code --device}), for messages
     * @param kind       {@code vfio-pci} or {@code vfio-user-pci}
     * @param pciAddress the guest's BDF, {@code 00:SS.F}
     */
    public record Device(String name, String kind, String pciAddress) {
        /** @return whether two device lists have the same kinds at the same PCI addresses, in order (names may differ) */
        public static boolean sameKinds(List<Device> a, List<Device> b) {
            if (a.size() != b.size()) {
                return false;
            }
            for (int i = 0; i < a.size(); i++) {
                if (!a.get(i).kind().equals(b.get(i).kind()) || !a.get(i).pciAddress().equals(b.get(i).pciAddress())) {
                    return false;
                }
            }
            return true;
        }

        /** @return the list for a message: "none", or "[vfio-user-pci at 00:01.0, ...]" */
        public static String describe(List<Device> devices) {
            return devices.isEmpty() ? "none" : devices.stream().map(d -> d.kind() + " at " + d.pciAddress()).toList().toString();
        }
    }

    /**
     * @param bytes  the file's size, bytes
     * @param crc32c its CRC32C, 8 hex digits
     */
    public record FileEntry(long bytes, String crc32c) {
    }

    /**
     * Checks what a reader must before using the manifest.
     *
     * @throws SnapshotException naming the first field that is missing or out of range, or a newer version
     */
    void check() {
        if (!FORMAT.equals(format)) {
            throw new SnapshotException("not a Panamax snapshot: format is " + format + ", not " + FORMAT);
        }
        if (version > VERSION || version < 1) {
            throw new SnapshotException("snapshot format version " + version + " is not one this Panamax reads (1 to "
                    + VERSION + ")");
        }
        if (machine == null || machine.cpus() < 1 || machine.cpus() > 254) {
            throw new SnapshotException("snapshot manifest: machine.cpus missing or out of range");
        }
        if (machine.memoryBytes() < (32L << 20) || machine.memoryBytes() % (2L << 20) != 0) {
            throw new SnapshotException("snapshot manifest: machine.memory_bytes " + machine.memoryBytes()
                    + " is not a guest RAM size (a multiple of 2 MiB, at least 32 MiB)");
        }
        if (devices == null || files == null) {
            throw new SnapshotException("snapshot manifest: devices or files missing");
        }
        for (String name : List.of(RAM_FILE, STATE_FILE)) {
            FileEntry f = files.get(name);
            if (f == null || f.bytes() < 0 || f.crc32c() == null || !f.crc32c().matches("[0-9a-f]{8}")) {
                throw new SnapshotException("snapshot manifest: files." + name + " missing or malformed");
            }
        }
        if (files.get(RAM_FILE).bytes() != machine.memoryBytes()) {
            throw new SnapshotException("snapshot manifest: the RAM file's " + files.get(RAM_FILE).bytes()
                    + " bytes are not the machine's " + machine.memoryBytes());
        }
    }
}
