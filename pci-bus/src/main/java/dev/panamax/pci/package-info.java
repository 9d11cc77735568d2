/**
 * PCI bus emulation: configuration space with write masks ({@link dev.panamax.pci.PciConfigSpace}), emulated
 * functions with BARs ({@link dev.panamax.pci.PciFunction}, {@link dev.panamax.pci.PciBar}), BAR placement
 * ({@link dev.panamax.pci.PciBarAllocator}) and mapping on the machine's buses
 * ({@link dev.panamax.pci.BusBarMapper}), the host bridge and configuration mechanism #1 at ports 0xCF8/0xCFC
 * ({@link dev.panamax.pci.PciBus}), INTx# routing to I/O APIC inputs, and MSI/MSI-X capability logic
 * ({@link dev.panamax.pci.MsiCapability}, {@link dev.panamax.pci.MsixCapability}).
 *
 * <p>Wiring into a machine:
 * <pre>{@code
 * PciBus pci = new PciBus(gsi -> level -> vm.irqLine(gsi, level));   // INTx# on GSIs 16..19
 * pci.registerPorts(pio);                                            // 0xCF8..0xCFB, 0xCFC..0xCFF
 * List<PciBus.IntxRoute> intx = pci.intxRoutes();                    // for the MP table (the machine's job)
 * }</pre>
 * Sources: PCI Local Bus Specification 3.0 (chapter 6), PCI Express Base Specification (7.2.2), Linux {@code include/uapi/linux/pci_regs.h}, {@code arch/x86/pci/direct.c},
 * {@code drivers/pci/msi/msi.c}.
 */
package dev.panamax.pci;
