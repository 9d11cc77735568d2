package dev.panamax.kvm;

import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_irqchip;
import dev.panamax.kvm.bindings.kvm_pit_state2;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * The state KVM holds for the VM itself, outside its vCPUs, as {@link KvmVm#saveState()} reads it and
 * {@link KvmVm#restoreState} puts it back ({@link X86VmState}): the in-kernel interrupt controllers and PIT and
 * the KVM clock. Each {@code byte[]} is a kernel struct of {@code <linux/kvm.h>} (x86-64, little-endian)
 * exactly as the {@code KVM_GET_*} ioctl returned it:
 *
 * <ul>
 * <li>{@code picMaster}, {@code picSlave}, {@code ioapic}: {@code struct kvm_irqchip} (520 bytes each,
 *     {@code KVM_GET_IRQCHIP}) whose {@code chip_id} is {@code KVM_IRQCHIP_PIC_MASTER} (0),
 *     {@code KVM_IRQCHIP_PIC_SLAVE} (1) and {@code KVM_IRQCHIP_IOAPIC} (2): the 8259As and the IOAPIC;</li>
 * <li>{@code pit2}: {@code struct kvm_pit_state2} (112 bytes, {@code KVM_GET_PIT2}): the 8254's three channels.</li>
 * </ul>
 *
 * <p>{@code clock} is {@code kvm_clock_data.clock} of {@code KVM_GET_CLOCK}: the guest's kvmclock in nanoseconds.
 *
 * <p>A plain record for Jackson: {@code byte[]} components serialize as base64. The constructor checks every
 * size and chip id (an {@link IllegalArgumentException} naming the piece) and copies the arrays; the accessors
 * return copies.
 *
 * @param picMaster {@code struct kvm_irqchip}, chip_id 0
 * @param picSlave  {@code struct kvm_irqchip}, chip_id 1
 * @param ioapic    {@code struct kvm_irqchip}, chip_id 2
 * @param pit2      {@code struct kvm_pit_state2}
 * @param clock     the kvmclock, nanoseconds
 */
public record VmState(byte[] picMaster, byte[] picSlave, byte[] ioapic, byte[] pit2, long clock) {

    /**
     * @throws IllegalArgumentException if a struct has the wrong size or an irqchip the wrong {@code chip_id}
     * @throws NullPointerException     if a component is null
     */
    public VmState {
        picMaster = irqchip("picMaster", picMaster, kvm_h.KVM_IRQCHIP_PIC_MASTER());
        picSlave = irqchip("picSlave", picSlave, kvm_h.KVM_IRQCHIP_PIC_SLAVE());
        ioapic = irqchip("ioapic", ioapic, kvm_h.KVM_IRQCHIP_IOAPIC());
        pit2 = sized("pit2", pit2, kvm_pit_state2.sizeof(), "struct kvm_pit_state2");
    }

    private static byte[] irqchip(String piece, byte[] b, int chipId) {
        byte[] copy = sized(piece, b, kvm_irqchip.sizeof(), "struct kvm_irqchip");
        int found = ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN).getInt((int) kvm_irqchip.chip_id$offset());
        if (found != chipId) {
            throw new IllegalArgumentException("VmState: " + piece + " has chip_id " + found + ", expected " + chipId);
        }
        return copy;
    }

    private static byte[] sized(String piece, byte[] b, long size, String struct) {
        Objects.requireNonNull(b, () -> "VmState: " + piece + " is null");
        if (b.length != size) {
            throw new IllegalArgumentException("VmState: " + piece + " is " + b.length + " bytes, " + struct + " is " + size);
        }
        return b.clone();
    }

    /** @return a copy of the master PIC's {@code struct kvm_irqchip} */
    @Override
    public byte[] picMaster() {
        return picMaster.clone();
    }

    /** @return a copy of the slave PIC's {@code struct kvm_irqchip} */
    @Override
    public byte[] picSlave() {
        return picSlave.clone();
    }

    /** @return a copy of the IOAPIC's {@code struct kvm_irqchip} */
    @Override
    public byte[] ioapic() {
        return ioapic.clone();
    }

    /** @return a copy of {@code struct kvm_pit_state2} */
    @Override
    public byte[] pit2() {
        return pit2.clone();
    }

    /** Equal when every component is: the arrays by content. */
    @Override
    public boolean equals(Object o) {
        return o instanceof VmState s && clock == s.clock && Arrays.equals(picMaster, s.picMaster)
                && Arrays.equals(picSlave, s.picSlave) && Arrays.equals(ioapic, s.ioapic) && Arrays.equals(pit2, s.pit2);
    }

    @Override
    public int hashCode() {
        return Objects.hash(clock, Arrays.hashCode(picMaster), Arrays.hashCode(picSlave), Arrays.hashCode(ioapic),
                Arrays.hashCode(pit2));
    }

    @Override
    public String toString() {
        return "VmState[clock=" + clock + " ns]";
    }
}
