package dev.panamax.virtio;

import dev.panamax.pci.PciConfigSpace;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.server.DeviceDma;
import dev.panamax.vfiouser.server.RegionHandler;
import dev.panamax.vfiouser.server.VfioUserServer;
import dev.panamax.vfiouser.transport.UnixSocket;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.panamax.virtio.VirtioDevice.*;
import static dev.panamax.virtio.VirtioPciTransport.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The transport with a device of its own (two queues, 8 bytes of configuration), reached through the vfio-user
 * regions' handlers directly: what it takes from the {@link VirtioDevice} and where it routes notifications.
 */
class VirtioPciTransportTest {
    static final class FakeDevice implements VirtioDevice {
        final List<Integer> notified = new ArrayList<>();
        final List<String> configWrites = new ArrayList<>();
        int resets;

        @Override
        public String name() {
            return "virtio-fake";
        }

        @Override
        public int deviceId() {
            return 9;
        }

        @Override
        public int pciClassCode() {
            return 0xff0000;
        }

        @Override
        public long features() {
            return 1L << 3;
        }

        @Override
        public int[] queueMaxSizes() {
            return new int[]{8, 16};
        }

        @Override
        public byte[] config() {
            return new byte[]{1, 2, 3, 4, 5, 6, 7, 8};
        }

        @Override
        public void writeConfig(int offset, byte[] data) {
            configWrites.add(offset + ":" + data.length);
        }

        @Override
        public boolean queueNotified(Virtqueue queue, DeviceDma dma) {
            notified.add(queue.index());
            return false;
        }

        @Override
        public void reset() {
            resets++;
        }
    }

    static long read(RegionHandler h, long offset, int width) {
        byte[] b = new byte[width];
        h.read(offset, b);
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (b[i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    static void write(RegionHandler h, long offset, int width, long value) {
        byte[] b = new byte[width];
        for (int i = 0; i < width; i++) {
            b[i] = (byte) (value >>> (8 * i));
        }
        h.write(offset, b);
    }

    @Test
    void theDeviceDecidesIdsFeaturesQueuesAndConfigTheTransportTheRest() {
        FakeDevice device = new FakeDevice();
        VirtioPciTransport pci = new VirtioPciTransport(device, false);
        int resetsAtStart = device.resets;
        RegionHandler config = pci.vfioUserDevice().region(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX()).orElseThrow().handler();
        RegionHandler bar0 = pci.vfioUserDevice().region(VIRTIO_BAR).orElseThrow().handler();
        assertEquals(0x1af4, read(config, PciConfigSpace.VENDOR_ID, 2));
        assertEquals(0x1040 + 9, read(config, PciConfigSpace.DEVICE_ID, 2));
        assertEquals(0xff0000, read(config, PciConfigSpace.CLASS_PROG, 3));
        assertEquals(3, pci.msixVectors(), "one vector for configuration changes, one per queue");
        assertEquals(VIRTIO_BAR_SIZE, pci.vfioUserDevice().region(VIRTIO_BAR).orElseThrow().size());
        // Features: the device's and the transport's.
        assertEquals((1L << 3) | (1L << VIRTIO_F_RING_INDIRECT_DESC) | (1L << VIRTIO_F_VERSION_1), pci.deviceFeatures());
        assertEquals(2, read(bar0, COMMON_CFG_OFFSET + 0x12, 2), "num_queues");
        write(bar0, COMMON_CFG_OFFSET + 0x16, 2, 1);
        assertEquals(16, read(bar0, COMMON_CFG_OFFSET + 0x18, 2), "queue 1's size");
        assertEquals(1, read(bar0, COMMON_CFG_OFFSET + 0x1E, 2), "queue 1's notify_off");
        write(bar0, COMMON_CFG_OFFSET + 0x1A, 2, 3);
        assertEquals(Virtqueue.NO_VECTOR, read(bar0, COMMON_CFG_OFFSET + 0x1A, 2), "vector 3 is beyond the table");
        // The device configuration window reads and writes the device's structure.
        assertEquals(0x0807060504030201L, read(bar0, DEVICE_CFG_OFFSET, 8));
        write(bar0, DEVICE_CFG_OFFSET + 2, 2, 0);
        assertEquals(List.of("2:2"), device.configWrites);

        UnixSocket[] pair = UnixSocket.pair();
        VfioUserServer server = pci.serve(pair[1]);
        try {
            write(bar0, COMMON_CFG_OFFSET + 0x14, 1, ACKNOWLEDGE | DRIVER);
            write(bar0, COMMON_CFG_OFFSET + 0x08, 4, 1);
            write(bar0, COMMON_CFG_OFFSET + 0x0C, 4, 1);
            write(bar0, COMMON_CFG_OFFSET + 0x14, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK);
            assertEquals(FEATURES_OK, pci.status() & FEATURES_OK);
            write(bar0, COMMON_CFG_OFFSET + 0x1C, 2, 1); // queue 1 enabled; queue 0 not
            write(bar0, COMMON_CFG_OFFSET + 0x14, 1, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            write(bar0, NOTIFY_OFFSET + NOTIFY_OFF_MULTIPLIER, 2, 1);
            write(bar0, NOTIFY_OFFSET, 2, 0);
            assertEquals(List.of(1), device.notified, "queue 1's doorbell reaches queue 1; queue 0 is not enabled");
            write(bar0, COMMON_CFG_OFFSET + 0x14, 1, 0);
            assertEquals(0, pci.status());
            assertEquals(resetsAtStart + 1, device.resets, "a driver reset resets the device");
            assertThrows(IllegalStateException.class, () -> pci.serve(pair[0]));
        } finally {
            server.close();
            pair[0].close();
        }
    }
}
