package dev.panamax.vmm.snapshot;

import dev.panamax.kvm.VcpuState;
import dev.panamax.kvm.VmState;

import java.util.List;
import java.util.Map;

/**
 * {@code state.json} of a snapshot: all a machine holds besides guest RAM. The KVM structures travel as the kernel
 * gave them (base64 in the JSON): their layouts are the kernel's ABI ({@code linux/kvm.h}), stable across kernels.
 *
 * @param vm      the in-kernel PIC, IOAPIC, PIT and the KVM clock
 * @param vcpus   every vCPU, by id
 * @param devices each device model's own encoding ({@code Snapshottable}), by name: {@code com1}, {@code i8042},
 *                {@code rtc}, {@code acpi-pm}, {@code pci}; assigned devices under their {@code --device} name
 */
public record MachineState(VmState vm, List<VcpuState> vcpus, Map<String, byte[]> devices) {
}
