package dev.panamax.kvm;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_clock_data;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_irqchip;
import dev.panamax.kvm.bindings.kvm_pit_state2;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * Saves and restores a {@link KvmVm}'s own state ({@link VmState}) with the VM ioctls made for it (kernel
 * {@code Documentation/virt/kvm/api.rst}, section 4): {@code KVM_GET/SET_IRQCHIP} for the in-kernel 8259A PICs
 * (master, slave) and IOAPIC, {@code KVM_GET/SET_PIT2} for the in-kernel 8254, {@code KVM_GET/SET_CLOCK} for the
 * kvmclock. The vCPUs must not be running.
 */
public final class X86VmState {
    private static final Logger log = LoggerFactory.getLogger(X86VmState.class);

    private X86VmState() {
    }

    /**
     * Reads the irqchips (master PIC, slave PIC, IOAPIC), the PIT and the clock.
     *
     * @throws LinuxException if KVM refuses an ioctl; the message names it
     */
    public static VmState save(KvmVm vm) {
        try (Arena a = Arena.ofConfined()) {
            byte[] master = getIrqchip(vm, a, kvm_h.KVM_IRQCHIP_PIC_MASTER());
            byte[] slave = getIrqchip(vm, a, kvm_h.KVM_IRQCHIP_PIC_SLAVE());
            byte[] ioapic = getIrqchip(vm, a, kvm_h.KVM_IRQCHIP_IOAPIC());
            MemorySegment pit = kvm_pit_state2.allocate(a);
            Libc.ioctl(vm.fd(), kvm_h.KVM_GET_PIT2(), pit, "KVM_GET_PIT2");
            MemorySegment clock = kvm_clock_data.allocate(a);
            Libc.ioctl(vm.fd(), kvm_h.KVM_GET_CLOCK(), clock, "KVM_GET_CLOCK");
            VmState s = new VmState(master, slave, ioapic, pit.toArray(JAVA_BYTE), kvm_clock_data.clock(clock));
            log.debug("VM: saved {}", s);
            return s;
        }
    }

    /**
     * Puts the saved irqchips, PIT and clock into a VM made by {@link Kvm#createVm()} (which created the in-kernel
     * irqchip and PIT). {@code KVM_SET_CLOCK} gets the saved clock with flags 0, so the guest's kvmclock continues
     * from the saved value instead of jumping by the time the VM spent saved ({@code KVM_CLOCK_REALTIME} would
     * advance it): restore this last, just before the vCPUs run again.
     *
     * @throws LinuxException if KVM refuses an ioctl; the message names it
     */
    public static void restore(KvmVm vm, VmState state) {
        try (Arena a = Arena.ofConfined()) {
            setIrqchip(vm, a, state.picMaster(), "KVM_SET_IRQCHIP PIC master");
            setIrqchip(vm, a, state.picSlave(), "KVM_SET_IRQCHIP PIC slave");
            setIrqchip(vm, a, state.ioapic(), "KVM_SET_IRQCHIP IOAPIC");
            MemorySegment pit = kvm_pit_state2.allocate(a);
            MemorySegment.copy(state.pit2(), 0, pit, JAVA_BYTE, 0, (int) kvm_pit_state2.sizeof());
            Libc.ioctl(vm.fd(), kvm_h.KVM_SET_PIT2(), pit, "KVM_SET_PIT2");
            setClock(vm, state.clock());
        }
        log.debug("VM: restored {}", state);
    }

    /**
     * {@code KVM_SET_CLOCK} with flags 0: the guest's kvmclock reads {@code nanoseconds} from now on, as after a
     * restore; QEMU does it on every resume with the clock read when the VM stopped, so a paused guest's time does not
     * jump by the pause ({@code hw/i386/kvm/clock.c}, {@code kvmclock_vm_state_change}).
     */
    public static void setClock(KvmVm vm, long nanoseconds) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment clock = kvm_clock_data.allocate(a);
            kvm_clock_data.clock(clock, nanoseconds);
            kvm_clock_data.flags(clock, 0);
            Libc.ioctl(vm.fd(), kvm_h.KVM_SET_CLOCK(), clock, "KVM_SET_CLOCK");
        }
    }

    /** @return the kvmclock now ({@code KVM_GET_CLOCK}), nanoseconds */
    public static long clock(KvmVm vm) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment clock = kvm_clock_data.allocate(a);
            Libc.ioctl(vm.fd(), kvm_h.KVM_GET_CLOCK(), clock, "KVM_GET_CLOCK");
            return kvm_clock_data.clock(clock);
        }
    }

    private static byte[] getIrqchip(KvmVm vm, Arena a, int chipId) {
        MemorySegment chip = kvm_irqchip.allocate(a);
        kvm_irqchip.chip_id(chip, chipId);
        Libc.ioctl(vm.fd(), kvm_h.KVM_GET_IRQCHIP(), chip, "KVM_GET_IRQCHIP " + chipId);
        return chip.toArray(JAVA_BYTE);
    }

    private static void setIrqchip(KvmVm vm, Arena a, byte[] saved, String what) {
        MemorySegment chip = kvm_irqchip.allocate(a);
        MemorySegment.copy(saved, 0, chip, JAVA_BYTE, 0, (int) kvm_irqchip.sizeof());
        Libc.ioctl(vm.fd(), kvm_h.KVM_SET_IRQCHIP(), chip, what);
    }
}
