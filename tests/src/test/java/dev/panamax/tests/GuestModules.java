package dev.panamax.tests;

import java.util.List;

/** Kernel modules the test and benchmark guests load ({@code ImageBuilder#modules}). */
public final class GuestModules {
    /** The nvme driver and what it needs; the CRC modules are soft dependencies modules.dep does not list. */
    public static final List<String> NVME = List.of("crct10dif_common", "crc64", "crct10dif-pclmul",
            "crct10dif_generic", "crc-t10dif", "crc64-rocksoft", "t10-pi", "nvme-core", "nvme");
    /** The virtio PCI transport and the virtio-blk driver ({@code /dev/vda}). */
    public static final List<String> VIRTIO_BLK = List.of("virtio_pci", "virtio_blk");

    private GuestModules() {
    }
}
