/**
 * PCI bus emulation: configuration space with write masks ({@link dev.panamax.pci.PciConfigSpace}), emulated
 * functions with BARs ({@link dev.panamax.pci.PciFunction}, {@link dev.panamax.pci.PciBar}), BAR placement
 * ({@link dev.panamax.pci.PciBarAllocator}) and mapping on the machine's buses
 * ({@link dev.panamax.pci.BusBarMapper}), the host bridge and configuration mechanism #1 at ports 0xCF8/0xCFC
 * ({@link dev.panamax.pci.PciBus}), INTx# routing into the MP table, and MSI/MSI-X capability logic
 * ({@link dev.panamax.pci.MsiCapability}, {@link dev.panamax.pci.MsixCapability}).
 *
 * <p>Wiring into a machine:
 * <pre>{@code
 * PciBus pci = new PciBus(gsi -> level -> vm.irqLine(gsi, level));   // INTx# on GSIs 16..19
 * pci.registerPorts(pio);                                            // 0xCF8..0xCFB, 0xCFC..0xCFF
 * MpTable mp = pci.mpTable(MpTable.standard(cpus));                  // PCI = MP bus 0, ISA = bus 1
 * }</pre>
 * Sources: PCI Local Bus Specification 3.0 (chapter 6), PCI Express Base Specification (7.2.2), Intel MP
 * Specification 1.4 (4.3), Linux {@code include/uapi/linux/pci_regs.h}, {@code arch/x86/pci/direct.c},
 * {@code drivers/pci/msi/msi.c}.
 */
package dev.panamax.pci;
