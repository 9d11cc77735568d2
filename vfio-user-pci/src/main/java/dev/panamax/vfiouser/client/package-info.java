/**
 * The vfio-user client (spec: vfio-user, "Protocol Specification"): {@link dev.panamax.vfiouser.client.VfioUserClient}
 * connects to a device server's UNIX socket and offers it as a {@link dev.panamax.vfio.VfioDeviceIo}, so that the PCI
 * model of kernel VFIO serves it unchanged; its {@link dev.panamax.vfiouser.client.VfioUserDmaBackend}, fed by a
 * {@link dev.panamax.vfio.DmaMemoryListener}, mirrors guest RAM into the server with DMA_MAP / DMA_UNMAP.
 */
package dev.panamax.vfiouser.client;
