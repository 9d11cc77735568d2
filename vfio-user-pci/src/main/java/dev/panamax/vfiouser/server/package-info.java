/**
 * A vfio-user server library: a PCI device living in its own process, served to one client (the
 * VMM) over a UNIX socket (spec: vfio-user, "Protocol Specification").
 *
 * <p>Declare the device with {@link dev.panamax.vfiouser.server.VfioUserDevice#builder}: a pci-bus
 * {@link dev.panamax.pci.PciFunction} (configuration space with its masks, BARs, MSI/MSI-X capabilities,
 * served as region CONFIG by {@link dev.panamax.vfiouser.server.PciConfigRegion}), regions by vfio index
 * ({@link dev.panamax.vfiouser.server.VfioUserRegion}: trapped, served by a
 * {@link dev.panamax.vfiouser.server.RegionHandler}, or backed by a memfd the client mmaps), IRQ
 * counts per vfio IRQ index, reset and disconnect callbacks. Serve it with
 * {@link dev.panamax.vfiouser.server.VfioUserServer}; the device reaches client memory through
 * {@link dev.panamax.vfiouser.server.DeviceDma} (mmap of DMA_MAP fds, else DMA_READ/DMA_WRITE
 * messages) and raises interrupts through {@link dev.panamax.vfiouser.server.DeviceIrqs}.
 */
package dev.panamax.vfiouser.server;
