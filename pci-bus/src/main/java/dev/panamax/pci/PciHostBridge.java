package dev.panamax.pci;

/**
 * The host bridge at 00:00.0: the function that tells software a PCI bus is there. It has the identity of
 * Intel's Q35 MCH (vendor 0x8086, device 0x29C0), as QEMU's q35 machine does, and class 06/00/00 (bridge,
 * host, no programming interface), which Linux's {@code pci_sanity_check} looks for before it trusts
 * configuration mechanism #1. No BARs, no interrupt pin.
 *
 * <h2>A PCI Express function of the root complex</h2>
 * Under an ACPI PNP0A08 (PCI Express root bridge) with an MCFG, a guest expects bus 0 to be a root complex's
 * internal bus and the host bridge to be a PCI Express function with 4 KiB of config space. It has:
 * <ul>
 * <li>4096 bytes of config space, with no extended capabilities: the dword at 0x100 reads 0, the header that
 *     says "none" (PCIe Base Spec 6.0, 7.6.3). Linux's {@code pci_cfg_space_size()} (drivers/pci/probe.c) gives
 *     a host bridge, or a function with a PCI Express capability, 4096 bytes when that dword is not all ones and
 *     does not repeat the vendor/device id every 256 bytes ({@code pci_ext_cfg_is_aliased}); sysfs's {@code config}
 *     file is then 4096 bytes.</li>
 * <li>A PCI Express capability, version 2, of Device/Port Type Root Complex Integrated Endpoint (1001b).
 *     Why that type: 7.5.3.2 allows a function with a type 0 header only Endpoint, Legacy Endpoint, Root Complex
 *     Integrated Endpoint and Root Complex Event Collector (Root Ports and switch ports have type 1 headers, and
 *     Linux would treat a type 0 "Root Port" as a bridge to a secondary bus it does not have). An (Legacy)
 *     Endpoint sits at the far end of a Link below a Root Port, and there is no Link here; an Event Collector
 *     needs an RCEC Endpoint Association capability and collects errors that nothing here sends. The host bridge
 *     is a function integrated in the root complex, on its internal bus, with no Link: that is what an RCiEP is,
 *     so its link registers are reserved and read 0. (Intel's own host bridges, and QEMU's q35 MCH, have no PCI
 *     Express capability at all; Linux would still size the space by class. The capability makes the function
 *     a PCI Express one for every guest that looks, {@code pci_is_pcie()} among them.)</li>
 * </ul>
 * Its device control register keeps what software writes (error reporting enables, payload and read request
 * sizes) and its device status error bits are write-1-to-clear; nothing here sets them.
 */
public final class PciHostBridge extends PciFunction {
    public static final int VENDOR_INTEL = 0x8086;
    /** Intel 82G33/G31/P35/P31 (Q35) DRAM controller / host bridge. */
    public static final int DEVICE_Q35_MCH = 0x29C0;
    /** Base class 06 (bridge), sub-class 00 (host bridge), programming interface 00. */
    public static final int CLASS_BRIDGE_HOST = 0x060000;

    private final int expressCapability;

    public PciHostBridge() {
        super("host-bridge", new PciConfigSpace(PciConfigSpace.EXTENDED_SIZE));
        config().initHeader(VENDOR_INTEL, DEVICE_Q35_MCH, 0, CLASS_BRIDGE_HOST, 0x1AF4, 0x1100);
        // A host bridge decodes memory and I/O to the bus beneath it: memory and bus master enabled at reset.
        config().set16(PciConfigSpace.COMMAND, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER);
        expressCapability = config().addCapability(PciConfigSpace.CAP_ID_EXP, new byte[PciExpress.CAPABILITY_SIZE_V2 - 2]);
        config().set16(expressCapability + PciExpress.FLAGS, 2 | PciExpress.TYPE_RC_INTEGRATED_ENDPOINT << 4);
        // Device control: max read request 512 bytes (010b in bits 14..12), its reset value (7.5.3.4).
        config().set16(expressCapability + PciExpress.DEVCTL, 0x2000);
        config().setWritable(expressCapability + PciExpress.DEVCTL, 2, PciExpress.DEVCTL_WRITABLE);
        config().setW1c(expressCapability + PciExpress.DEVSTA, 2, PciExpress.DEVSTA_ERRORS);
    }

    /** @return the offset of the PCI Express capability in config space */
    public int expressCapability() {
        return expressCapability;
    }
}
