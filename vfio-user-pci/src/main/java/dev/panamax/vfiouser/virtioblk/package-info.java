/**
 * A sample vfio-user device: a modern (virtio 1.x, non-transitional) virtio-blk PCI function that
 * serves a disk image file, built on the server library {@link dev.panamax.vfiouser.server}.
 * References are to "Virtual I/O Device (VIRTIO) Version 1.1" (sections 2.1 device status, 2.7
 * split virtqueues, 3.1 device initialization, 4.1 virtio over PCI, 5.2 block device) and the PCI
 * Local Bus Specification 3.0 (6.7 capabilities, 6.8.2 MSI-X).
 */
package dev.panamax.vfiouser.virtioblk;
