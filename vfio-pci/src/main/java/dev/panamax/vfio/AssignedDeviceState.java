package dev.panamax.vfio;

import dev.panamax.core.state.StateException;
import dev.panamax.core.state.StateReader;
import dev.panamax.core.state.StateWriter;
import dev.panamax.pci.MsixCapability;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;

/**
 * The client side of an assigned device in a snapshot ({@link AssignedPciDevice#saveState}): what this process holds
 * for it, not what the device holds (that moves with the device's own migration data). Tag {@value #TAG}, version
 * {@value #VERSION}, little-endian ({@link StateWriter}):
 *
 * <pre>
 *   le32 vendor and device id (config bytes 0..3 as the device reports them)
 *   u8   interrupt mode then on ({@link VfioInterrupts.Mode}: 0 none, 1 INTx, 2 MSI, 3 MSI-X)
 *   le16 command register as the guest reads it (the device's bits with the emulated I/O and memory enables)
 *   the emulated ("virtual") config space, {@link PciFunction#saveConfigState}: le16 size (256 or 4096), the bytes
 *        (BARs as the guest programmed them, the MSI and MSI-X capabilities' registers), u8 INTx# level
 *   le16 MSI-X vectors (0: no MSI-X), then per vector 4 x le32: message address, upper address, data, vector control
 * </pre>
 *
 * <p>Restoring checks it all first (the same device, the same config size and identity, the same vector count,
 * no reserved vector control bit, no trailing byte; a {@link StateException} leaves the device unchanged), then puts
 * the MSI-X table back, writes the command register to the device, applies the virtual config space (BAR listeners
 * map the BARs where the guest had them, the capability hooks re-enable MSI or MSI-X, whose vectors get GSI routes
 * and irqfds through {@link VfioInterrupts} as a guest's writes would make them), and mirrors the message control
 * registers to the device ({@link VfioPciFunction#mirrorControlToDevice}). The interrupt mode reached must be the
 * saved one. The PBA is not saved: an assigned device's pending vectors are counted in its eventfds, by the kernel.
 */
final class AssignedDeviceState {
    static final String TAG = "ASGN";
    static final int VERSION = 1;
    private static final int CONFIG = VfioPciFunction.CONFIG;

    private AssignedDeviceState() {
    }

    /** Called with the vCPUs paused; reads the device's id and command register (two config reads). */
    static byte[] save(AssignedPciDevice d) {
        VfioPciFunction f = d.function();
        synchronized (f.lock()) {
            var w = new StateWriter(TAG, VERSION);
            w.u32((int) f.device().regionRead(CONFIG, PciConfigSpace.VENDOR_ID, 4));
            w.u8(d.interrupts().mode().ordinal());
            w.u16(f.configRead(PciConfigSpace.COMMAND, 2));
            f.saveConfigState(w);
            MsixCapability msix = f.msix();
            if (msix == null) {
                w.u16(0);
            } else {
                w.u16(msix.vectors());
                for (int word : msix.tableWords()) {
                    w.u32(word);
                }
            }
            return w.toByteArray();
        }
    }

    /**
     * @throws StateException if {@code state} is not of this device (see the class comment), or, once applied, the
     *         interrupts did not come back in the saved mode (the device or KVM refused them)
     */
    static void restore(AssignedPciDevice d, byte[] state) {
        VfioPciFunction f = d.function();
        String name = f.name();
        var r = new StateReader(name, state, TAG, VERSION);
        int id = r.u32();
        int here = (int) f.device().regionRead(CONFIG, PciConfigSpace.VENDOR_ID, 4);
        if (id != here) {
            throw r.invalid(String.format("the snapshot's device is %04x:%04x, this one %04x:%04x", id & 0xFFFF, id >>> 16,
                    here & 0xFFFF, here >>> 16));
        }
        VfioInterrupts.Mode mode = VfioInterrupts.Mode.values()[(int) r.check("interrupt mode", r.u8(), 0,
                VfioInterrupts.Mode.values().length - 1)];
        int command = r.u16();
        PciFunction.SavedConfig config = f.readConfigState(r);
        MsixCapability msix = f.msix();
        int vectors = r.u16();
        int expected = msix == null ? 0 : msix.vectors();
        if (vectors != expected) {
            throw r.invalid("the snapshot has " + vectors + " MSI-X vectors, this device " + expected);
        }
        int[] table = new int[4 * vectors];
        for (int i = 0; i < table.length; i++) {
            table[i] = r.u32();
            if (i % 4 == 3 && (table[i] & ~MsixCapability.ENTRY_CTRL_MASKBIT) != 0) {
                throw r.invalid(String.format("MSI-X vector %d control 0x%08x has reserved bits set", i / 4, table[i]));
            }
        }
        r.end();
        synchronized (f.lock()) {
            if (msix != null) {
                msix.restoreTableWords(table);
            }
            f.device().regionWrite(CONFIG, PciConfigSpace.COMMAND, 2, command);
            f.applyConfigState(config);
            f.mirrorControlToDevice();
        }
        VfioInterrupts.Mode now = d.interrupts().mode();
        if (now != mode) {
            throw new StateException(name + " state: interrupts are " + now + " after the restore, " + mode
                    + " in the snapshot (see the warning above)");
        }
    }
}
