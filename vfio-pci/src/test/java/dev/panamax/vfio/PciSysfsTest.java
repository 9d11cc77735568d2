package dev.panamax.vfio;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sysfs checks before VFIO, on a fake sysfs tree shaped like the kernel's. */
class PciSysfsTest {
    @TempDir
    Path sys;

    static final String BDF = "0000:01:00.0";

    Path device() throws IOException {
        return Files.createDirectories(sys.resolve("bus/pci/devices").resolve(BDF));
    }

    void group(Path dev, int n) throws IOException {
        Path g = Files.createDirectories(sys.resolve("kernel/iommu_groups/" + n));
        Files.createSymbolicLink(dev.resolve("iommu_group"), dev.relativize(g));
    }

    void driver(Path dev, String name) throws IOException {
        Path d = Files.createDirectories(sys.resolve("bus/pci/drivers/" + name));
        Files.createSymbolicLink(dev.resolve("driver"), dev.relativize(d));
    }

    String failure(String bdf) {
        return assertThrows(IllegalStateException.class, () -> new PciSysfs(sys).vfioGroup(bdf)).getMessage();
    }

    @Test
    void boundDeviceGivesItsGroup() throws IOException {
        Path dev = device();
        group(dev, 14);
        driver(dev, "vfio-pci");
        assertEquals(14, new PciSysfs(sys).vfioGroup("01:00.0"));
        assertEquals(14, new PciSysfs(sys).vfioGroup("0000:01:00.0"));
        assertEquals("vfio-pci", new PciSysfs(sys).driver(BDF));
    }

    @Test
    void missingDevice() {
        String m = failure(BDF);
        assertTrue(m.contains("PCI device 0000:01:00.0 not found") && m.contains("bus/pci/devices/0000:01:00.0 is missing"), m);
    }

    @Test
    void noIommuGroupSaysHowToBoot() throws IOException {
        driver(device(), "e1000e");
        String m = failure(BDF);
        assertTrue(m.contains("no IOMMU: boot the host with intel_iommu=on"), m);
        assertTrue(m.contains("0000:01:00.0"), m);
    }

    @Test
    void otherDriverNamesItAndVfioPci() throws IOException {
        Path dev = device();
        group(dev, 3);
        driver(dev, "e1000e");
        String m = failure(BDF);
        assertTrue(m.contains("is bound to e1000e, not vfio-pci") && m.contains("driver_override"), m);
    }

    @Test
    void noDriver() throws IOException {
        group(device(), 3);
        String m = failure(BDF);
        assertTrue(m.contains("is not bound to vfio-pci (no driver)"), m);
        assertEquals(1, m.lines().count());
    }

    @Test
    void bdfSyntax() {
        assertEquals("0000:3b:1f.7", PciSysfs.normalizeBdf(" 3B:1F.7 "));
        assertEquals("0001:00:02.0", PciSysfs.normalizeBdf("0001:00:02.0"));
        for (String bad : new String[] {"1:00.0", "00:20.0", "00:02.8", "0000:00:02", "../../etc"}) {
            assertThrows(IllegalArgumentException.class, () -> PciSysfs.normalizeBdf(bad), bad);
        }
    }
}
