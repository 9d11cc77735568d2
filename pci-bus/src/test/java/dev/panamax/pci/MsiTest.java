package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.Bus;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** MSI and MSI-X programmed as Linux's drivers/pci/msi/msi.c does it. */
class MsiTest {
    /** Records callbacks as strings. */
    static final class Recorder implements MsiListener {
        final List<String> changes = new ArrayList<>();
        final List<String> messages = new ArrayList<>();

        @Override
        public void onVectorChanged(int vector, long address, int data, boolean masked) {
            changes.add(String.format("%d 0x%x 0x%x %s", vector, address, data, masked ? "masked" : "unmasked"));
        }

        @Override
        public void onMessage(int vector, long address, int data) {
            messages.add(String.format("%d 0x%x 0x%x", vector, address, data));
        }

        List<String> unmaskedChanges() {
            return changes.stream().filter(s -> s.endsWith(" unmasked")).toList();
        }
    }

    static PciFunction function() {
        var f = new PciFunction("msi", new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(0x1AF4, 0x1000, 0, 0x020000, 0, 0);
        return f;
    }

    @Test
    void msiCapabilityLayout() {
        var f = function();
        var msi = new MsiCapability(f, 4, true, new Recorder());
        assertEquals(msi.offset(), f.config().findCapability(PciConfigSpace.CAP_ID_MSI));
        int flags = f.configRead(msi.offset() + MsiCapability.FLAGS, 2);
        assertEquals(0x0100 | 0x0080 | 2 << 1, flags);
        // Read-only bits stay: capable count, 64-bit, per-vector masking.
        f.configWrite(msi.offset() + MsiCapability.FLAGS, 2, 0xFFFF);
        assertEquals(0x0100 | 0x0080 | 0x70 | 2 << 1 | 1, f.configRead(msi.offset() + MsiCapability.FLAGS, 2));
        assertEquals(4, msi.enabledVectors()); // QSIZE 7 is capped at the capable count
        f.configWrite(msi.offset() + MsiCapability.ADDRESS_LO, 4, 0xFFFFFFFF);
        assertEquals(0xFFFFFFFC, f.configRead(msi.offset() + MsiCapability.ADDRESS_LO, 4));
        f.configWrite(msi.offset() + MsiCapability.MASK_64, 4, 0xFFFFFFFF);
        assertEquals(0xF, f.configRead(msi.offset() + MsiCapability.MASK_64, 4));
        f.configWrite(msi.offset() + MsiCapability.PENDING_64, 4, 0xFFFFFFFF);
        assertEquals(0, f.configRead(msi.offset() + MsiCapability.PENDING_64, 4));
        assertThrows(IllegalArgumentException.class, () -> new MsiCapability(function(), 3, false, new Recorder()));
        assertThrows(IllegalArgumentException.class, () -> new MsiCapability(function(), 64, false, new Recorder()));
    }

    @Test
    void msiLinuxSequenceWithMaskBits() {
        var f = function();
        var r = new Recorder();
        var msi = new MsiCapability(f, 4, true, r);
        int cap = msi.offset();
        // msi_capability_init: MSI off, mask all vectors.
        f.configWrite(cap + MsiCapability.FLAGS, 2, f.configRead(cap + MsiCapability.FLAGS, 2) & ~1);
        f.configWrite(cap + MsiCapability.MASK_64, 4, 0xF);
        // __pci_write_msi_msg: multiple message enable (2 vectors), address, data.
        f.configWrite(cap + MsiCapability.FLAGS, 2, f.configRead(cap + MsiCapability.FLAGS, 2) & ~0x70 | 1 << 4);
        f.configWrite(cap + MsiCapability.ADDRESS_LO, 4, 0xFEE0_1000);
        f.configWrite(cap + MsiCapability.ADDRESS_HI, 4, 0);
        f.configWrite(cap + MsiCapability.DATA_64, 2, 0x4020);
        assertEquals(List.of(), r.unmaskedChanges());
        assertFalse(msi.fire(0)); // disabled: dropped, not pending
        assertEquals(0, msi.pendingBits());
        // pci_intx_for_msi, then MSI enable: still masked by the mask bits.
        f.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MASTER | PciConfigSpace.COMMAND_INTX_DISABLE);
        f.configWrite(cap + MsiCapability.FLAGS, 2, f.configRead(cap + MsiCapability.FLAGS, 2) | 1);
        assertTrue(msi.enabled());
        assertEquals(2, msi.enabledVectors());
        assertEquals(List.of(), r.unmaskedChanges());
        // request_irq unmasks vector 0.
        r.changes.clear();
        f.configWrite(cap + MsiCapability.MASK_64, 4, 0xE);
        assertEquals(List.of("0 0xfee01000 0x4020 unmasked"), r.changes);
        assertTrue(msi.fire(0));
        assertEquals(List.of("0 0xfee01000 0x4020"), r.messages);
        // Vector 1 fires while masked: pending until unmasked, then sent with the vector in the data's low bit.
        assertFalse(msi.fire(1));
        assertEquals(0b10, msi.pendingBits());
        assertEquals(0b10, f.configRead(cap + MsiCapability.PENDING_64, 4));
        r.changes.clear();
        r.messages.clear();
        f.configWrite(cap + MsiCapability.MASK_64, 4, 0xC);
        assertEquals(List.of("1 0xfee01000 0x4021 unmasked"), r.changes);
        assertEquals(List.of("1 0xfee01000 0x4021"), r.messages);
        assertEquals(0, msi.pendingBits());
        // Vector 2 is beyond the 2 enabled: never sent.
        assertFalse(msi.fire(2));
        // Disabling MSI masks the vectors.
        r.changes.clear();
        f.configWrite(cap + MsiCapability.FLAGS, 2, f.configRead(cap + MsiCapability.FLAGS, 2) & ~1);
        assertEquals(List.of("0 0xfee01000 0x4020 masked", "1 0xfee01000 0x4021 masked"), r.changes);
    }

    @Test
    void msiWithoutMaskBitsIsLiveOnEnable() {
        var f = function();
        var r = new Recorder();
        var msi = new MsiCapability(f, 1, false, r);
        int cap = msi.offset();
        assertEquals(0x40, cap);
        assertEquals(0x0080, f.configRead(cap + MsiCapability.FLAGS, 2)); // 64-bit, 1 vector, no mask bits
        assertEquals(0x50, f.config().addCapability(PciConfigSpace.CAP_ID_VNDR, new byte[2])); // 14 bytes, dword-rounded
        f.configWrite(cap + MsiCapability.ADDRESS_LO, 4, 0xFEE0_0000);
        f.configWrite(cap + MsiCapability.DATA_64, 2, 0x0031);
        r.changes.clear();
        f.configWrite(cap + MsiCapability.FLAGS, 2, 1);
        assertEquals(List.of("0 0xfee00000 0x31 unmasked"), r.changes);
        assertTrue(msi.fire(0));
        assertEquals(List.of("0 0xfee00000 0x31"), r.messages);
        assertEquals(0, msi.pendingBits());
    }

    /** A function with MSI-X in BAR 0, mapped on an MMIO bus at 0xC000_0000. */
    static final class MsixDevice {
        final PciFunction f = function();
        final Recorder r = new Recorder();
        final Bus mmio = new Bus("mmio");
        final MsixCapability msix;
        static final long BAR = 0xC000_0000L;

        MsixDevice(int vectors) {
            msix = new MsixCapability(f, vectors, 0, 0, MsixCapability.dedicatedPbaOffset(vectors), r);
            f.setBar(0, PciBar.memory32(MsixCapability.dedicatedBarSize(vectors)), msix);
            f.addBarListener(new BusBarMapper(new Bus("pio"), mmio));
            f.setBarAddress(0, BAR);
            f.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER);
        }

        int control() {
            return f.configRead(msix.offset() + MsixCapability.FLAGS, 2);
        }

        void setControl(int clear, int set) {
            f.configWrite(msix.offset() + MsixCapability.FLAGS, 2, control() & ~clear | set);
        }

        long entry(int v, int field) {
            return BAR + 16L * v + field;
        }

        long pba() {
            return mmio.read(BAR + MsixCapability.dedicatedPbaOffset(vectors()), 8);
        }

        int vectors() {
            return (control() & MsixCapability.FLAGS_QSIZE) + 1;
        }
    }

    @Test
    void msixCapabilityLayout() {
        var d = new MsixDevice(5);
        int cap = d.msix.offset();
        assertEquals(cap, d.f.config().findCapability(PciConfigSpace.CAP_ID_MSIX));
        assertEquals(4, d.control());
        assertEquals(0, d.f.configRead(cap + MsixCapability.TABLE, 4)); // offset 0, BIR 0
        assertEquals(0x1000, d.f.configRead(cap + MsixCapability.PBA, 4));
        assertEquals(0x2000, MsixCapability.dedicatedBarSize(5));
        d.f.configWrite(cap + MsixCapability.FLAGS, 2, 0xFFFF);
        assertEquals(0xC004, d.control());
        d.f.configWrite(cap + MsixCapability.TABLE, 4, 0xFFFFFFFF);
        assertEquals(0, d.f.configRead(cap + MsixCapability.TABLE, 4));
        // Entries start masked; reserved vector control bits are read-only 0.
        assertEquals(1, d.mmio.read(d.entry(4, MsixCapability.ENTRY_VECTOR_CTRL), 4));
        d.mmio.write(d.entry(4, MsixCapability.ENTRY_VECTOR_CTRL), 4, 0xFFFFFFFFL);
        assertEquals(1, d.mmio.read(d.entry(4, MsixCapability.ENTRY_VECTOR_CTRL), 4));
        // The PBA is read-only.
        d.mmio.write(MsixDevice.BAR + 0x1000, 8, -1L);
        assertEquals(0, d.mmio.read(MsixDevice.BAR + 0x1000, 8));
        assertThrows(IllegalArgumentException.class, () -> new MsixCapability(function(), 0, 0, 0, 0x1000, d.r));
        assertThrows(IllegalArgumentException.class, () -> new MsixCapability(function(), 4, 0, 0, 0x20, d.r));
        assertThrows(IllegalArgumentException.class, () -> new MsixCapability(function(), 4, 6, 0, 0x1000, d.r));
        assertThrows(IllegalArgumentException.class, () -> new MsixCapability(function(), 4, 0, 4, 0x1000, d.r));
    }

    @Test
    void msixLinuxSequence() {
        var d = new MsixDevice(4);
        // msix_capability_init: enable with the function masked.
        d.setControl(0, MsixCapability.FLAGS_MASKALL | MsixCapability.FLAGS_ENABLE);
        assertTrue(d.msix.enabled());
        assertTrue(d.msix.functionMasked());
        // msix_mask_all: every entry's vector control = MASKBIT.
        for (int v = 0; v < 4; v++) {
            d.mmio.write(d.entry(v, MsixCapability.ENTRY_VECTOR_CTRL), 4, 1);
        }
        assertEquals(List.of(), d.r.changes);
        // pci_write_msg_msix for vectors 0 and 1, entries masked: address lo, hi, data, then a read to flush.
        for (int v = 0; v < 2; v++) {
            d.mmio.write(d.entry(v, MsixCapability.ENTRY_LOWER_ADDR), 4, 0xFEE0_0000L | v << 12);
            d.mmio.write(d.entry(v, MsixCapability.ENTRY_UPPER_ADDR), 4, 0);
            d.mmio.write(d.entry(v, MsixCapability.ENTRY_DATA), 4, 0x40 + v);
            d.mmio.read(d.entry(v, MsixCapability.ENTRY_DATA), 4);
        }
        assertEquals(List.of("0 0xfee00000 0x0 masked", "0 0xfee00000 0x40 masked",
                "1 0xfee01000 0x0 masked", "1 0xfee01000 0x41 masked"), d.r.changes);
        assertEquals(0xFEE01000L, d.mmio.read(d.entry(1, 0), 4));
        assertEquals(0xFEE01000L, d.mmio.read(d.entry(1, 0), 8));
        assertEquals(0x41L | 1L << 32, d.mmio.read(d.entry(1, 8), 8));
        // pci_intx_for_msi, then the function mask is cleared: entries still masked.
        d.r.changes.clear();
        d.setControl(MsixCapability.FLAGS_MASKALL, 0);
        assertFalse(d.msix.functionMasked());
        assertEquals(List.of(), d.r.changes);
        // request_irq: unmask entry 0.
        d.mmio.write(d.entry(0, MsixCapability.ENTRY_VECTOR_CTRL), 4, 0);
        assertEquals(List.of("0 0xfee00000 0x40 unmasked"), d.r.changes);
        assertTrue(d.msix.fire(0));
        assertEquals(List.of("0 0xfee00000 0x40"), d.r.messages);
    }

    @Test
    void msixPendingBitsAndFunctionMask() {
        var d = new MsixDevice(4);
        d.setControl(0, MsixCapability.FLAGS_ENABLE);
        d.mmio.write(d.entry(2, 0), 8, 0x0000_0000_FEE0_3000L); // one qword write of the address
        d.mmio.write(d.entry(2, 8), 8, 0x0000_0001_0000_0052L); // data and vector control (masked)
        assertEquals(List.of("2 0xfee03000 0x0 masked", "2 0xfee03000 0x52 masked"), d.r.changes);
        // A masked vector fires: its PBA bit is set.
        assertFalse(d.msix.fire(2));
        assertTrue(d.msix.pending(2));
        assertEquals(0b100, d.pba());
        // Unmasking sends it and clears the bit.
        d.r.changes.clear();
        d.mmio.write(d.entry(2, MsixCapability.ENTRY_VECTOR_CTRL), 4, 0);
        assertEquals(List.of("2 0xfee03000 0x52 unmasked"), d.r.changes);
        assertEquals(List.of("2 0xfee03000 0x52"), d.r.messages);
        assertEquals(0, d.pba());
        // The function mask masks every vector; a fire becomes pending until it is cleared.
        d.r.changes.clear();
        d.r.messages.clear();
        d.setControl(0, MsixCapability.FLAGS_MASKALL);
        assertEquals(List.of("2 0xfee03000 0x52 masked"), d.r.changes);
        assertFalse(d.msix.fire(2));
        assertFalse(d.msix.fire(3)); // entry 3 is masked too: pending, stays pending
        assertEquals(0b1100, d.pba());
        d.setControl(MsixCapability.FLAGS_MASKALL, 0);
        assertEquals(List.of("2 0xfee03000 0x52"), d.r.messages);
        assertEquals(0b1000, d.pba());
        assertEquals(1, d.mmio.read(MsixDevice.BAR + 0x1000, 1) >>> 3);
        // Disabled MSI-X drops a fire without setting a pending bit.
        d.setControl(MsixCapability.FLAGS_ENABLE, 0);
        assertFalse(d.msix.fire(1));
        assertFalse(d.msix.pending(1));
        assertThrows(IllegalArgumentException.class, () -> d.msix.fire(4));
    }

    @Test
    void msixPbaBeyondSixtyFourVectors() {
        var f = function();
        var r = new Recorder();
        var msix = new MsixCapability(f, 100, 2, 0x2000, 0x3000, r);
        f.configWrite(msix.offset() + MsixCapability.FLAGS, 2, MsixCapability.FLAGS_ENABLE);
        assertEquals(0x2002, f.configRead(msix.offset() + MsixCapability.TABLE, 4));
        assertEquals(0x3002, f.configRead(msix.offset() + MsixCapability.PBA, 4));
        msix.fire(70);
        msix.fire(99);
        assertEquals(0, msix.read(0x3000, 8));
        assertEquals(1L << 6 | 1L << 35, msix.read(0x3008, 8));
        assertEquals(1L << 3, msix.read(0x300C, 4));
        assertEquals(1, msix.read(0x2000 + 16 * 99 + 12, 4));
        assertEquals(0, msix.read(0x1000, 4)); // outside table and PBA
    }
}
