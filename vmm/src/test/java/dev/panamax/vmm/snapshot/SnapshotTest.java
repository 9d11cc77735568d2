package dev.panamax.vmm.snapshot;

import dev.panamax.kvm.VcpuState;
import dev.panamax.kvm.VmState;
import dev.panamax.kvm.bindings.kvm_debugregs;
import dev.panamax.kvm.bindings.kvm_irqchip;
import dev.panamax.kvm.bindings.kvm_lapic_state;
import dev.panamax.kvm.bindings.kvm_pit_state2;
import dev.panamax.kvm.bindings.kvm_regs;
import dev.panamax.kvm.bindings.kvm_sregs;
import dev.panamax.kvm.bindings.kvm_vcpu_events;
import dev.panamax.kvm.bindings.kvm_xcrs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Snapshot}: a written directory reads back whole; every kind of damage the issue names (no manifest, a
 * truncated manifest, RAM or state file, a version from the future, a changed byte) is one {@link SnapshotException}
 * line, found before anything is used.
 */
class SnapshotTest {
    private static final long RAM = 32L << 20;
    private static final SnapshotManifest.Machine MACHINE = new SnapshotManifest.Machine(1, RAM, "console=ttyS0", "ANONYMOUS");

    private static VcpuState vcpu(int id) {
        byte[] regs = new byte[(int) kvm_regs.sizeof()];
        regs[0] = (byte) (id + 1);
        return new VcpuState(id, regs, new byte[(int) kvm_sregs.sizeof()], new byte[VcpuState.XSAVE_LEGACY_BYTES],
                new byte[(int) kvm_xcrs.sizeof()], new byte[(int) kvm_lapic_state.sizeof()],
                new byte[(int) kvm_vcpu_events.sizeof()], new byte[(int) kvm_debugregs.sizeof()], 0,
                List.of(new VcpuState.MsrValue(0x10, 123456789L), new VcpuState.MsrValue(0x4b564d01, 0x1001)));
    }

    private static byte[] irqchip(int chip) {
        byte[] b = new byte[(int) kvm_irqchip.sizeof()];
        b[(int) kvm_irqchip.chip_id$offset()] = (byte) chip;
        return b;
    }

    private static MachineState state() {
        return new MachineState(new VmState(irqchip(0), irqchip(1), irqchip(2), new byte[(int) kvm_pit_state2.sizeof()],
                987654321L), List.of(vcpu(0)), Map.of("com1", new byte[]{1, 2, 3}));
    }

    private static Path written(Path dir, Arena arena) {
        MemorySegment ram = arena.allocate(RAM, 4096);
        ram.set(JAVA_LONG, 1 << 20, 0xfeedfaceL);
        Snapshot.write(dir, MACHINE, List.of(), ram, state());
        return dir;
    }

    @Test
    void writtenSnapshotReadsBackWhole(@TempDir Path tmp) {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            Snapshot s = Snapshot.open(dir);
            assertEquals(MACHINE, s.manifest().machine());
            MachineState st = s.state();
            assertEquals(state().vm(), st.vm());
            assertEquals(state().vcpus(), st.vcpus());
            assertArrayEquals(new byte[]{1, 2, 3}, st.devices().get("com1"));
            MemorySegment back = arena.allocate(RAM, 4096);
            s.loadRam(back);
            assertEquals(0xfeedfaceL, back.get(JAVA_LONG, 1 << 20));
        }
    }

    @Test
    void aSecondSnapshotIntoTheSameDirectoryIsRefused(@TempDir Path tmp) {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            SnapshotException e = assertThrows(SnapshotException.class,
                    () -> Snapshot.write(dir, MACHINE, List.of(), arena.allocate(RAM, 4096), state()));
            assertTrue(e.getMessage().contains("already holds"), e.getMessage());
        }
    }

    @Test
    void noManifestIsNoSnapshot(@TempDir Path tmp) {
        SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(tmp));
        assertTrue(e.getMessage().contains("holds no snapshot"), e.getMessage());
    }

    @Test
    void truncatedManifestIsMalformed(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            Path m = dir.resolve(SnapshotManifest.MANIFEST_FILE);
            String text = Files.readString(m);
            Files.writeString(m, text.substring(0, text.length() / 2));
            SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(dir));
            assertTrue(e.getMessage().contains("malformed"), e.getMessage());
        }
    }

    @Test
    void versionFromTheFutureIsRefused(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            Path m = dir.resolve(SnapshotManifest.MANIFEST_FILE);
            Files.writeString(m, Files.readString(m).replace("\"version\" : 1", "\"version\" : 2"));
            SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(dir));
            assertTrue(e.getMessage().contains("snapshot format version 2 is not one this Panamax reads"), e.getMessage());
        }
    }

    @Test
    void truncatedRamFileIsFoundAtOpen(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            try (RandomAccessFile f = new RandomAccessFile(dir.resolve("ram").toFile(), "rw")) {
                f.setLength(RAM / 2);
            }
            SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(dir));
            assertTrue(e.getMessage().contains("truncated or replaced"), e.getMessage());
        }
    }

    @Test
    void damagedStateFileIsFoundByItsChecksum(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            Path st = dir.resolve(SnapshotManifest.STATE_FILE);
            byte[] b = Files.readAllBytes(st);
            b[b.length / 2] ^= 0x01;
            Files.write(st, b);
            Snapshot s = Snapshot.open(dir); // same size: only the checksum can tell
            SnapshotException e = assertThrows(SnapshotException.class, s::state);
            assertTrue(e.getMessage().contains("is damaged"), e.getMessage());
        }
    }

    @Test
    void stateWithAStructOfTheWrongSizeIsMalformed(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            // Rewrite state.json with regs one byte short, and the manifest's size and checksum to match.
            Path st = dir.resolve(SnapshotManifest.STATE_FILE);
            var tree = (com.fasterxml.jackson.databind.node.ObjectNode) Snapshot.json().readTree(st.toFile());
            var cpu = (com.fasterxml.jackson.databind.node.ObjectNode) tree.get("vcpus").get(0);
            cpu.put("regs", new byte[(int) kvm_regs.sizeof() - 1]);
            byte[] bytes = Snapshot.json().writeValueAsBytes(tree);
            Files.write(st, bytes);
            Path m = dir.resolve(SnapshotManifest.MANIFEST_FILE);
            SnapshotManifest old = Snapshot.json().readValue(m.toFile(), SnapshotManifest.class);
            SnapshotManifest fixed = new SnapshotManifest(old.format(), old.version(), old.createdAt(), old.machine(),
                    old.devices(), Map.of(SnapshotManifest.RAM_FILE, old.files().get(SnapshotManifest.RAM_FILE),
                    SnapshotManifest.STATE_FILE, new SnapshotManifest.FileEntry(bytes.length, Snapshot.hex(Snapshot.crc32c(bytes)))));
            Files.write(m, Snapshot.json().writeValueAsBytes(fixed));
            SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(dir).state());
            assertTrue(e.getMessage().contains("malformed") && e.getMessage().contains("regs"), e.getMessage());
        }
    }

    @Test
    void manifestNamingAFileOutsideItsDirectoryIsRefused(@TempDir Path tmp) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Path dir = written(tmp.resolve("snap"), arena);
            Path m = dir.resolve(SnapshotManifest.MANIFEST_FILE);
            Files.writeString(m, Files.readString(m).replace("\"files\" : {", "\"files\" : { \"../etc\" : {\"bytes\" : 1, \"crc32c\" : \"00000000\"},"));
            SnapshotException e = assertThrows(SnapshotException.class, () -> Snapshot.open(dir));
            assertTrue(e.getMessage().contains("outside its directory"), e.getMessage());
        }
    }
}
