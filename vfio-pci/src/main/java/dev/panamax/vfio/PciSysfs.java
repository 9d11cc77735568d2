package dev.panamax.vfio;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The host's view of a PCI device in sysfs, checked before VFIO is asked for it, so that a wrong setup gives
 * one line saying what to do. The root is a parameter ({@code /sys} on a host) so tests can build a fake tree.
 *
 * <p>Paths read: {@code bus/pci/devices/BDF} (the device), its {@code iommu_group} link (to
 * {@code kernel/iommu_groups/N}) and its {@code driver} link (to {@code bus/pci/drivers/NAME}).
 *
 * @param root the sysfs mount point, e.g. {@code /sys}
 */
public record PciSysfs(Path root) {
    /** {@code [domain:]bus:device.function}, hexadecimal. */
    private static final Pattern BDF = Pattern.compile("(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([01][0-9a-f])\\.([0-7])");

    /** The host's sysfs at {@code /sys}. */
    public static PciSysfs host() {
        return new PciSysfs(Path.of("/sys"));
    }

    /**
     * Normalises a PCI address to sysfs's form {@code DDDD:BB:DD.F}, lower case; a missing domain is 0000.
     *
     * @throws IllegalArgumentException if {@code bdf} is not a PCI address
     */
    public static String normalizeBdf(String bdf) {
        var m = BDF.matcher(bdf.strip().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new IllegalArgumentException("'" + bdf + "' is not a PCI address: expected DDDD:BB:DD.F, e.g. 0000:01:00.0");
        }
        return (m.group(1) == null ? "0000" : m.group(1)) + ":" + m.group(2) + ":" + m.group(3) + "." + m.group(4);
    }

    /** @return {@code root/bus/pci/devices/BDF} */
    public Path device(String bdf) {
        return root.resolve("bus/pci/devices").resolve(normalizeBdf(bdf));
    }

    /**
     * Checks that the device exists, sits in an IOMMU group and is bound to vfio-pci.
     *
     * @return the IOMMU group number (the N of {@code /dev/vfio/N})
     * @throws IllegalStateException with one line naming the device and what to do
     */
    public int vfioGroup(String bdf) {
        String b = normalizeBdf(bdf);
        Path dev = device(b);
        if (!Files.isDirectory(dev)) {
            throw new IllegalStateException("PCI device " + b + " not found: " + dev + " is missing (list devices with lspci -D)");
        }
        Path group = dev.resolve("iommu_group");
        if (!Files.exists(group, LinkOption.NOFOLLOW_LINKS)) {
            throw new IllegalStateException("PCI device " + b + " has no IOMMU group (" + group
                    + " is missing): no IOMMU: boot the host with intel_iommu=on (or amd_iommu=on) and enable VT-d/AMD-Vi in the firmware");
        }
        int number;
        try {
            number = Integer.parseInt(Files.readSymbolicLink(group).getFileName().toString());
        } catch (IOException | NumberFormatException e) {
            throw new IllegalStateException("PCI device " + b + ": cannot read IOMMU group from " + group + ": " + e.getMessage());
        }
        String driver = driver(b);
        if (driver == null) {
            throw new IllegalStateException("PCI device " + b + " is not bound to vfio-pci (no driver): run "
                    + "'echo vfio-pci > " + dev.resolve("driver_override") + "; echo " + b + " > " + root.resolve("bus/pci/drivers_probe") + "'");
        }
        if (!driver.equals("vfio-pci")) {
            throw new IllegalStateException("PCI device " + b + " is bound to " + driver + ", not vfio-pci: run "
                    + "'echo " + b + " > " + dev.resolve("driver/unbind") + "; echo vfio-pci > " + dev.resolve("driver_override")
                    + "; echo " + b + " > " + root.resolve("bus/pci/drivers_probe") + "'");
        }
        return number;
    }

    /** @return the name of the driver the device is bound to (the {@code driver} link's target), or null if none */
    public String driver(String bdf) {
        Path link = device(bdf).resolve("driver");
        if (!Files.exists(link, LinkOption.NOFOLLOW_LINKS)) {
            return null;
        }
        try {
            return Files.readSymbolicLink(link).getFileName().toString();
        } catch (IOException e) {
            throw new IllegalStateException("PCI device " + bdf + ": cannot read " + link + ": " + e.getMessage());
        }
    }
}
