package dev.panamax.pci;

/**
 * The host bridge at 00:00.0: the function that tells software a PCI bus is there. It has the identity of
 * Intel's Q35 MCH (vendor 0x8086, device 0x29C0), as QEMU's q35 machine does, and class 06/00/00 (bridge,
 * host, no programming interface), which Linux's {@code pci_sanity_check} looks for before it trusts
 * configuration mechanism #1. No BARs, no capabilities, no interrupt pin.
 */
public final class PciHostBridge extends PciFunction {
    public static final int VENDOR_INTEL = 0x8086;
    /** Intel 82G33/G31/P35/P31 (Q35) DRAM controller / host bridge. */
    public static final int DEVICE_Q35_MCH = 0x29C0;
    /** Base class 06 (bridge), sub-class 00 (host bridge), programming interface 00. */
    public static final int CLASS_BRIDGE_HOST = 0x060000;

    public PciHostBridge() {
        super("host-bridge", new PciConfigSpace(PciConfigSpace.SIZE));
        config().initHeader(VENDOR_INTEL, DEVICE_Q35_MCH, 0, CLASS_BRIDGE_HOST, 0x1AF4, 0x1100);
        // A host bridge decodes memory and I/O to the bus beneath it: memory and bus master enabled at reset.
        config().set16(PciConfigSpace.COMMAND, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER);
    }
}
