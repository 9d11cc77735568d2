/**
 * The virtio transport on PCI for vfio-user devices: {@link dev.panamax.virtio.VirtioPciTransport} (virtio 1.2,
 * 4.1 "Virtio Over PCI Bus": the PCI function on pci-bus's model, the virtio capabilities, common configuration,
 * notifications, ISR, MSI-X and INTx), split virtqueues ({@link dev.panamax.virtio.Virtqueue}, 2.7 "Split
 * Virtqueues"), and the {@link dev.panamax.virtio.VirtioDevice} interface a device type implements (5 "Device
 * Types"; {@link dev.panamax.virtio.blk} is the block device). References are to "Virtual I/O Device (VIRTIO)
 * Version 1.2" (2.1 device status, 2.7 split virtqueues, 3.1 device initialization, 4.1 virtio over PCI) and the
 * PCI Local Bus Specification 3.0 (6.7 capabilities, 6.8.2 MSI-X).
 */
package dev.panamax.virtio;
