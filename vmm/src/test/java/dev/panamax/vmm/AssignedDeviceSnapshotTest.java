package dev.panamax.vmm;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.MemFd;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.AssignedPciDevice;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfio.VfioInterrupts;
import dev.panamax.vfio.VfioPciFunction;
import dev.panamax.vfiouser.client.VfioUserClient;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.virtio.VirtioPciTransport;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.blk.VirtioBlkServer;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A virtio-blk device served over vfio-user moves from one {@link VirtioBlkServer} to a fresh one through
 * {@link AssignedDeviceSnapshot}, both ends real (servers in this process, over UNIX sockets, guest RAM one memfd):
 * STOP, STOP_COPY and MIG_DATA_READ on the source, which then runs again; RESUMING, MIG_DATA_WRITE, STOP and the
 * client's side (BARs, MSI-X, routes) on the destination, then RUNNING. The destination's device state read back is
 * the source's byte for byte, and so is the client state. A damaged record and migration data the server refuses are
 * one {@link ConfigException} ("restore") each.
 */
class AssignedDeviceSnapshotTest {
    static final long BASE = 0x1_0000_0000L;
    static final int MEMORY = 1 << 20;
    static final int CONFIG = 7; // VFIO_PCI_CONFIG_REGION_INDEX
    static final List<SnapshotManifest.Device> SAVED = List.of(new SnapshotManifest.Device("blk0", "vfio-user-pci", "00:01.0"));

    @TempDir
    Path dir;
    final List<AutoCloseable> open = new ArrayList<>();
    MemFd guest;
    Path disk;

    @AfterEach
    void closeAll() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    /** The VM side: GSI routes and irqfds in place now. */
    static final class Routes implements IrqRoutes {
        final Set<String> live = new TreeSet<>();
        int next = 24;

        @Override
        public int addMsiRoute(long address, int data) {
            live.add(next + " 0x" + Long.toHexString(address) + " 0x" + Integer.toHexString(data));
            return next++;
        }

        @Override
        public void updateMsiRoute(int gsi, long address, int data) {
        }

        @Override
        public void removeMsiRoute(int gsi) {
            live.removeIf(s -> s.startsWith(gsi + " "));
        }

        @Override
        public void bindIrqfd(int eventFd, int gsi) {
            live.add("irqfd " + gsi);
        }

        @Override
        public void bindResampleIrqfd(int eventFd, int resampleFd, int gsi) {
        }

        @Override
        public void unbindIrqfd(int eventFd, int gsi) {
            live.remove("irqfd " + gsi);
        }
    }

    static final BarListener NO_TRAPS = new BarListener() {
        @Override
        public void barMapped(PciFunction function, int index, PciBar bar, long address) {
        }

        @Override
        public void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
        }
    };

    /** A server on {@code name}.sock for the disk, a client with guest RAM mapped, attached as a machine does. */
    AssignedPciDevice serve(String name, Routes routes) throws Exception {
        if (guest == null) {
            guest = new MemFd("guest", MEMORY);
            open.add(guest);
            disk = dir.resolve("disk.img");
            Files.write(disk, new byte[256 * 512]);
        }
        Path socket = dir.resolve(name + ".sock");
        VirtioBlkServer server = new VirtioBlkServer(socket, disk, VirtioBlk.Options.DEFAULT, -1, VfioUserServer.Deadlines.DEFAULT);
        Thread loop = Thread.ofPlatform().name("virtio-blk-" + name).start(server::run);
        open.add(() -> {
            server.close();
            loop.join(5000);
        });
        VfioUserClient c = VfioUserClient.connect(socket, VfioUserClient.Options.defaults().withPostedWrites(false));
        c.dma().dmaMap(BASE, new RamRegion("guest", BASE, MEMORY, guest.mapping(), guest.fd(), 0), DmaBackend.READ | DmaBackend.WRITE);
        AssignedPciDevice d = AssignedPciDevice.attach(c, new PciBus(gsi -> level -> { }), new AddressSpace(), routes, NO_TRAPS,
                new PciBarAllocator(0xC000_0000L, 0xE000_0000L, 1L << 36, 1L << 40));
        open.add(d);
        return d;
    }

    static VfioUserClient client(AssignedPciDevice d) {
        return (VfioUserClient) d.function().device();
    }

    static int capability(VfioPciFunction f, int id) {
        for (int at = f.configRead(0x34, 1); at != 0; at = f.configRead(at + 1, 1)) {
            if (f.configRead(at, 1) == id) {
                return at;
            }
        }
        throw new AssertionError("no capability " + id);
    }

    /** The guest as Linux's virtio-pci drives it, up to DRIVER: BARs placed, memory and bus master on, MSI-X on. */
    static void program(AssignedPciDevice d) {
        VfioPciFunction f = d.function();
        f.configWrite(0x10, 4, 0xD000_000C);
        f.configWrite(0x14, 4, 0);
        f.configWrite(0x18, 4, 0xD010_0000);
        f.configWrite(0x04, 2, 0x0006);
        int msix = capability(f, 0x11);
        f.configWrite(msix + 2, 2, 0xC000);
        var table = f.region(VirtioPciTransport.MSIX_BAR);
        for (int v = 0; v < 2; v++) {
            table.write(16L * v, 4, 0xFEE0_0000L);
            table.write(16L * v + 8, 4, 0x30 + v);
            table.write(16L * v + 12, 4, 0);
        }
        f.configWrite(msix + 2, 2, 0x8000);
        var common = f.region(VirtioPciTransport.VIRTIO_BAR);
        common.write(0x14, 1, 1 | 2); // device_status: ACKNOWLEDGE | DRIVER
        common.write(0x08, 4, 1); // driver_feature_select
        common.write(0x10, 2, 0); // config_msix_vector
    }

    @Test
    void theDeviceAndItsClientStateMoveToAFreshServer() throws Exception {
        AssignedPciDevice source = serve("src", new Routes());
        program(source);
        AssignedDeviceSnapshot snap = new AssignedDeviceSnapshot(SAVED, List.of(source));
        snap.checkSavable("snapshot");
        Map<String, byte[]> states = snap.stopAndSave();
        assertEquals(VfioDeviceMigState.STOP_COPY, client(source).migration().state());
        assertNull(snap.resumeAll());
        assertEquals(VfioDeviceMigState.RUNNING, client(source).migration().state(), "the source runs again");
        AssignedDeviceSnapshot.Saved saved = AssignedDeviceSnapshot.decode("blk0", states.get("blk0"));
        assertTrue(saved.data().length > 0);

        Routes routes = new Routes();
        AssignedPciDevice target = serve("dst", routes);
        // Another name on the command line: matching is by position.
        AssignedDeviceSnapshot restore = new AssignedDeviceSnapshot(
                List.of(new SnapshotManifest.Device("other", "vfio-user-pci", "00:01.0")), List.of(target));
        restore.restore(SAVED, states);
        assertEquals(VfioDeviceMigState.STOP, client(target).migration().state(), "stopped until the vCPUs have their state");
        assertEquals(VfioInterrupts.Mode.MSIX, target.interrupts().mode());
        assertTrue(routes.live.contains("24 0xfee00000 0x30") && routes.live.contains("irqfd 24"), routes.live.toString());
        restore.startAll();
        assertEquals(VfioDeviceMigState.RUNNING, client(target).migration().state());

        assertArrayEquals(saved.client(), target.saveState(), "the client state");
        int msix = capability(target.function(), 0x11);
        assertEquals(0x8000, client(target).regionRead(CONFIG, msix + 2, 2) & 0xC000, "the server knows MSI-X is on");
        assertEquals(0x0006, client(target).regionRead(CONFIG, 0x04, 2) & 0x0006, "memory and bus master on the server");
        assertEquals(1 | 2, target.function().region(VirtioPciTransport.VIRTIO_BAR).read(0x14, 1), "device_status");

        // The destination's device state, read back, is the source's.
        var m = client(target).migration();
        m.setState(VfioDeviceMigState.STOP);
        m.setState(VfioDeviceMigState.STOP_COPY);
        assertArrayEquals(saved.data(), m.readAll(AssignedDeviceSnapshot.MAX_DATA));
        m.setState(VfioDeviceMigState.RUNNING);
    }

    @Test
    void aDamagedOrMissingRecordOrRefusedDataFailsTheRestore() throws Exception {
        AssignedPciDevice source = serve("src", new Routes());
        program(source);
        AssignedDeviceSnapshot snap = new AssignedDeviceSnapshot(SAVED, List.of(source));
        Map<String, byte[]> states = snap.stopAndSave();
        snap.resumeAll();
        AssignedDeviceSnapshot.Saved saved = AssignedDeviceSnapshot.decode("blk0", states.get("blk0"));

        AssignedPciDevice target = serve("dst", new Routes());
        AssignedDeviceSnapshot restore = new AssignedDeviceSnapshot(SAVED, List.of(target));

        ConfigException missing = assertThrows(ConfigException.class, () -> restore.restore(SAVED, Map.of()));
        assertTrue(missing.getMessage().contains("holds no state for device blk0"), missing.getMessage());

        byte[] tag = states.get("blk0").clone();
        tag[0] = 'X';
        ConfigException damaged = assertThrows(ConfigException.class, () -> restore.restore(SAVED, Map.of("blk0", tag)));
        assertTrue(damaged.getMessage().contains("blk0 state: tag"), damaged.getMessage());
        byte[] cut = java.util.Arrays.copyOf(states.get("blk0"), states.get("blk0").length - 1);
        assertThrows(ConfigException.class, () -> restore.restore(SAVED, Map.of("blk0", cut)));
        byte[] kernel = AssignedDeviceSnapshot.encode(AssignedDeviceSnapshot.KIND_KERNEL_VFIO, saved.data(), saved.client());
        ConfigException kind = assertThrows(ConfigException.class, () -> restore.restore(SAVED, Map.of("blk0", kernel)));
        assertTrue(kind.getMessage().contains("kind 2 (kernel VFIO)") && kind.getMessage().contains("kind 1 (vfio-user)"),
                kind.getMessage());
        assertEquals(VfioDeviceMigState.RUNNING, client(target).migration().state(), "checked before the device is touched");

        byte[] data = saved.data().clone();
        data[0] ^= 1; // the PXVS magic
        ConfigException refused = assertThrows(ConfigException.class,
                () -> restore.restore(SAVED, Map.of("blk0", AssignedDeviceSnapshot.encode(data, saved.client()))));
        assertTrue(refused.getMessage().contains("device blk0 (vfio-user-pci at 00:01.0)")
                && refused.getMessage().contains("SET MIG_DEVICE_STATE STOP") && refused.getMessage().contains("EINVAL"),
                refused.getMessage());
    }

    @Test
    void aRecordCarriesItsKindAndAnUnknownKindIsRefused() {
        byte[] data = {1, 2, 3};
        byte[] client = {4};
        var k = AssignedDeviceSnapshot.decode("nic0", AssignedDeviceSnapshot.encode(AssignedDeviceSnapshot.KIND_KERNEL_VFIO, data, client));
        assertEquals(AssignedDeviceSnapshot.KIND_KERNEL_VFIO, k.kind());
        assertArrayEquals(data, k.data());
        assertArrayEquals(client, k.client());
        assertEquals(AssignedDeviceSnapshot.KIND_VFIO_USER, AssignedDeviceSnapshot.decode("blk0",
                AssignedDeviceSnapshot.encode(data, client)).kind());
        assertThrows(dev.panamax.core.state.StateException.class,
                () -> AssignedDeviceSnapshot.decode("x", AssignedDeviceSnapshot.encode(3, data, client)));
        assertNull(AssignedDeviceSnapshot.migration(null), "neither kind");
    }

    @Test
    void theModelsGetTheirStatesWithoutTheDevicesRecords() {
        Map<String, byte[]> all = new LinkedHashMap<>();
        all.put("com1", new byte[1]);
        all.put("pci", new byte[2]);
        all.put("blk0", new byte[3]);
        assertEquals(List.of("com1", "pci"), List.copyOf(AssignedDeviceSnapshot.modelStates(all, SAVED).keySet()));
    }
}
