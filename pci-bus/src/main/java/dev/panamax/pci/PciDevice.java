package dev.panamax.pci;

/**
 * A PCI function as the bus's configuration mechanism sees it: reads and writes of its configuration space.
 * {@link PciFunction} is the emulated implementation; a passthrough device may forward some accesses.
 *
 * <p>{@link PciBus} calls {@link #configRead} and {@link #configWrite} from any vCPU thread, holding this object's
 * monitor ({@code synchronized (device)}) and no bus-wide lock: accesses to one function are serialized, accesses to
 * different functions run at once. An implementation that guards its state with another lock must also take it.
 */
public interface PciDevice {
    /**
     * @param offset byte offset into configuration space, 0..255 (or 0..4095 with extended config space)
     * @param size   1, 2 or 4 bytes, naturally within one dword
     * @return the value, zero-extended
     */
    int configRead(int offset, int size);

    /**
     * @param offset byte offset into configuration space
     * @param size   1, 2 or 4 bytes, naturally within one dword
     * @param value  the value in the low {@code size} bytes
     */
    void configWrite(int offset, int size, int value);

    /** @return the interrupt pin, 0 for none or 1..4 for INTA#..INTD# (config offset 0x3D) */
    default int interruptPin() {
        return configRead(PciConfigSpace.INTERRUPT_PIN, 1);
    }

    /** @return a short name for logs */
    default String name() {
        return getClass().getSimpleName();
    }
}
