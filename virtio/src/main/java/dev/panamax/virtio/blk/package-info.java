/**
 * A virtio-blk device (virtio 1.2, 5.2 "Block Device") that serves a disk image file:
 * {@link dev.panamax.virtio.blk.VirtioBlk} (request parsing, file I/O) on the virtio PCI transport
 * {@link dev.panamax.virtio.VirtioPciTransport}, served over vfio-user; {@link dev.panamax.virtio.blk.VirtioBlkServer}
 * serves it on a socket path ({@code panamax device virtio-blk}).
 */
package dev.panamax.virtio.blk;
