package dev.panamax.launcher;

import dev.panamax.vmm.DeviceConfig;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.List;

/** {@code --device}, repeatable: the PCI devices assigned to the guest. */
public final class DeviceOptions {
    @Option(names = "--device", paramLabel = "SPEC",
            description = {"Assign a PCI device (repeatable): vfio-pci,host=DDDD:BB:DD.F for a host device bound to "
                    + "vfio-pci, or vfio-user-pci,socket=PATH for a device served over vfio-user "
                    + "(also QEMU's JSON form {\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":PATH,\"type\":\"unix\"}})."})
    List<String> devices = new ArrayList<>();

    /** @return the parsed specs, in command-line order */
    List<DeviceConfig> specs() {
        return devices.stream().map(DeviceSpec::parse).toList();
    }
}
