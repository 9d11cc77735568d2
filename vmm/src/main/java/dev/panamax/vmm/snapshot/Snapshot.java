package dev.panamax.vmm.snapshot;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * A snapshot directory (issue 17): {@value SnapshotManifest#MANIFEST_FILE} ({@link SnapshotManifest}),
 * {@value SnapshotManifest#RAM_FILE} ({@link RamFile}) and {@value SnapshotManifest#STATE_FILE}
 * ({@link MachineState}). {@link #write} writes the manifest last, through a rename, so a directory with a manifest
 * holds a whole snapshot; {@link #open} checks the manifest and the files' sizes, {@link #state()} and
 * {@link #loadRam} their checksums: nothing of a damaged snapshot is trusted.
 */
public final class Snapshot implements SavedMachine {
    /** Files larger than this are no state file Panamax wrote (a vCPU's state is a few KiB): not read into memory. */
    static final long STATE_FILE_LIMIT = 64L << 20;

    private static final ObjectMapper JSON = JsonMapper.builder()
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .build();

    private final Path dir;
    private final SnapshotManifest manifest;

    private Snapshot(Path dir, SnapshotManifest manifest) {
        this.dir = dir;
        this.manifest = manifest;
    }

    /** What {@link #write} wrote: total bytes of RAM, bytes on disk of the whole directory. */
    public record Written(long ramBytes, long diskBytes) {
    }

    /**
     * Writes a snapshot into {@code dir} (created if missing; it must hold no snapshot already).
     *
     * @param ram host-mapped guest RAM, all of it ({@code GuestRam.memory().mapping()})
     * @throws SnapshotException if {@code dir} already holds a snapshot, or a file cannot be written (the partial
     *                           files are removed)
     */
    public static Written write(Path dir, SnapshotManifest.Machine machine, List<SnapshotManifest.Device> devices,
                                MemorySegment ram, MachineState state) {
        try {
            Files.createDirectories(dir);
            for (String name : List.of(SnapshotManifest.MANIFEST_FILE, SnapshotManifest.RAM_FILE, SnapshotManifest.STATE_FILE)) {
                if (Files.exists(dir.resolve(name))) {
                    throw new SnapshotException("snapshot directory " + dir + " already holds " + name);
                }
            }
        } catch (IOException e) {
            throw new SnapshotException("cannot create snapshot directory " + dir + ": " + e.getMessage(), e);
        }
        try {
            RamFile.Written r = RamFile.write(ram, dir.resolve(SnapshotManifest.RAM_FILE));
            byte[] stateJson = JSON.writeValueAsBytes(state);
            Files.write(dir.resolve(SnapshotManifest.STATE_FILE), stateJson);
            SnapshotManifest m = new SnapshotManifest(SnapshotManifest.FORMAT, SnapshotManifest.VERSION,
                    Instant.now().toString(), machine, devices, Map.of(
                    SnapshotManifest.RAM_FILE, new SnapshotManifest.FileEntry(r.bytes(), hex(r.crc32c())),
                    SnapshotManifest.STATE_FILE, new SnapshotManifest.FileEntry(stateJson.length, hex(crc32c(stateJson)))));
            Path tmp = dir.resolve(SnapshotManifest.MANIFEST_FILE + ".tmp");
            Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(m));
            Files.move(tmp, dir.resolve(SnapshotManifest.MANIFEST_FILE), StandardCopyOption.ATOMIC_MOVE);
            return new Written(r.bytes(), r.diskBytes() + stateJson.length);
        } catch (IOException | RuntimeException e) {
            for (String name : List.of(SnapshotManifest.MANIFEST_FILE + ".tmp", SnapshotManifest.RAM_FILE, SnapshotManifest.STATE_FILE)) {
                try {
                    Files.deleteIfExists(dir.resolve(name));
                } catch (IOException ignored) {
                    // the message below is what matters
                }
            }
            if (e instanceof SnapshotException s) {
                throw s;
            }
            throw new SnapshotException("cannot write the snapshot to " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Opens a snapshot directory: reads and checks its manifest, and that its files have the sizes it gives.
     *
     * @throws SnapshotException one line naming what is missing, malformed, too new or of the wrong size
     */
    public static Snapshot open(Path dir) {
        Path file = dir.resolve(SnapshotManifest.MANIFEST_FILE);
        if (!Files.isRegularFile(file)) {
            throw new SnapshotException(dir + " holds no snapshot (no " + SnapshotManifest.MANIFEST_FILE + ")");
        }
        SnapshotManifest m;
        try {
            if (Files.size(file) > STATE_FILE_LIMIT) {
                throw new SnapshotException("snapshot manifest " + file + " is too large to be one");
            }
            m = JSON.readValue(file.toFile(), SnapshotManifest.class);
        } catch (JsonProcessingException e) {
            throw new SnapshotException("snapshot manifest " + file + " is malformed: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new SnapshotException("cannot read snapshot manifest " + file + ": " + e.getMessage(), e);
        }
        if (m == null) {
            throw new SnapshotException("snapshot manifest " + file + " is empty");
        }
        m.check();
        for (var e : m.files().entrySet()) {
            Path f = dir.resolve(e.getKey()).normalize();
            if (!f.getParent().equals(dir.normalize())) {
                throw new SnapshotException("snapshot manifest names a file outside its directory: " + e.getKey());
            }
            try {
                long size = Files.size(f);
                if (size != e.getValue().bytes()) {
                    throw new SnapshotException("snapshot file " + f + " is " + size + " bytes, the manifest says "
                            + e.getValue().bytes() + " (truncated or replaced)");
                }
            } catch (IOException x) {
                throw new SnapshotException("snapshot file " + f + " is missing: " + x.getMessage(), x);
            }
        }
        return new Snapshot(dir, m);
    }

    /** @return the checked manifest */
    public SnapshotManifest manifest() {
        return manifest;
    }

    /** @return the directory */
    public Path dir() {
        return dir;
    }

    @Override
    public SnapshotManifest.Machine machine() {
        return manifest.machine();
    }

    @Override
    public List<SnapshotManifest.Device> devices() {
        return manifest.devices();
    }

    @Override
    public String origin() {
        return dir.toString();
    }

    /**
     * Reads and checks {@value SnapshotManifest#STATE_FILE}.
     *
     * @throws SnapshotException if its checksum differs from the manifest's or it is not a machine state
     */
    @Override
    public MachineState state() {
        SnapshotManifest.FileEntry entry = manifest.files().get(SnapshotManifest.STATE_FILE);
        if (entry.bytes() > STATE_FILE_LIMIT) {
            throw new SnapshotException("snapshot state file is " + entry.bytes() + " bytes, more than a state can be");
        }
        Path file = dir.resolve(SnapshotManifest.STATE_FILE);
        try {
            byte[] bytes = Files.readAllBytes(file);
            if (!hex(crc32c(bytes)).equals(entry.crc32c())) {
                throw new SnapshotException("snapshot state file " + file + " is damaged: CRC32C " + hex(crc32c(bytes))
                        + ", the manifest says " + entry.crc32c());
            }
            MachineState s = JSON.readValue(bytes, MachineState.class);
            if (s == null || s.vm() == null || s.vcpus() == null || s.devices() == null
                    || s.vcpus().size() != manifest.machine().cpus()) {
                throw new SnapshotException("snapshot state file " + file + " does not hold a whole machine");
            }
            return s;
        } catch (JsonProcessingException e) {
            throw new SnapshotException("snapshot state file " + file + " is malformed: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new SnapshotException("cannot read snapshot state file " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads guest RAM from {@value SnapshotManifest#RAM_FILE} into {@code ram} (fresh, zero guest RAM of the
     * manifest's size).
     *
     * @throws SnapshotException if the file is damaged (RAM is then partly written: throw the machine away)
     */
    @Override
    public void loadRam(MemorySegment ram) {
        try {
            RamFile.read(dir.resolve(SnapshotManifest.RAM_FILE), ram,
                    Long.parseLong(manifest.files().get(SnapshotManifest.RAM_FILE).crc32c(), 16));
        } catch (IOException e) {
            throw new SnapshotException("cannot read snapshot RAM file: " + e.getMessage(), e);
        }
    }

    static long crc32c(byte[] bytes) {
        CRC32C c = new CRC32C();
        c.update(bytes);
        return c.getValue();
    }

    static String hex(long crc) {
        return String.format("%08x", crc);
    }

    /** For tests: the JSON mapper snapshot files are read and written with. */
    static ObjectMapper json() {
        return JSON;
    }
}
