/**
 * The vfio-user client (spec: vfio-user, "Protocol Specification"): {@link dev.panamax.vfiouser.client.VfioUserClient}
 * connects to a device server's UNIX socket and offers it as a {@link dev.panamax.vfio.VfioDeviceIo}, so that the PCI
 * model of kernel VFIO serves it unchanged; its {@link dev.panamax.vfiouser.client.VfioUserDmaBackend}, fed by a
 * {@link dev.panamax.vfio.DmaMemoryListener}, mirrors guest RAM into the server with DMA_MAP / DMA_UNMAP. Inside, as
 * QEMU's {@code hw/vfio-user/}: {@code VfioUserProxy} (the connection, {@code proxy.c}), {@code VfioUserDeviceIo}
 * (the device I/O ops, {@code device.c}) and {@code VfioUserDmaBackend} (the DMA backend, {@code container.c}).
 */
package dev.panamax.vfiouser.client;
