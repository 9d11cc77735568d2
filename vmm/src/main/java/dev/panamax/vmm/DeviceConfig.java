package dev.panamax.vmm;

import java.nio.file.Path;
import java.time.Duration;

/** One PCI device assigned to the guest, as the {@link DeviceManager} attaches it. */
public sealed interface DeviceConfig {
    /** How messages name the device (the launcher gives its {@code --device} option as the user wrote it). */
    String name();

    /**
     * A host PCI device handed over by the kernel's VFIO (QEMU's {@code vfio-pci,host=0000:00:04.0}).
     *
     * @param host the device's address, DDDD:BB:DD.F
     */
    record VfioPci(String name, String host) implements DeviceConfig {
    }

    /**
     * A device served by another process over vfio-user (QEMU's {@code vfio-user-pci,socket=PATH}).
     *
     * @param socket         the server's UNIX socket
     * @param requestTimeout how long a request may wait for its reply (default {@link #DEFAULT_TIMEOUT})
     * @param stopOnError    whether a server that dies or misbehaves stops the VM with an error; if not, the device
     *                       goes on broken, its reads all-ones and its writes dropped
     * @param ioeventfd      whether the doorbells the server offers (DEVICE_GET_REGION_IO_FDS) are registered with KVM
     *                       as ioeventfds (default off: not yet measured, and a guest hung once in 4 nested boots with it on); on turns posted BAR writes off, so that a write is served
     *                       before a doorbell rung after it
     */
    record VfioUserPci(String name, Path socket, Duration requestTimeout, boolean stopOnError, boolean ioeventfd)
            implements DeviceConfig {
        /** The default request timeout, as QEMU's vfio-user client has it. */
        public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

        /** With ioeventfds off (the default). */
        public VfioUserPci(String name, Path socket, Duration requestTimeout, boolean stopOnError) {
            this(name, socket, requestTimeout, stopOnError, false);
        }
    }
}
