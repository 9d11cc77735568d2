package dev.panamax.vfio;

import dev.panamax.pci.BarListener;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import dev.panamax.vfio.VfioRegionInfo.Area;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Config space virtualization of an assigned function over a fake device: what reads come from the device,
 * what is emulated, and which writes never reach it.
 */
class VfioPciFunctionTest {
    static final int RW = 3;
    static final int MMAP = 7;

    /** Vectors reported to the MSI listener, as strings for easy comparison. */
    final List<String> msiEvents = new ArrayList<>();
    final MsiListener listener = new MsiListener() {
        @Override
        public void onVectorChanged(int vector, long address, int data, boolean masked) {
            msiEvents.add(String.format("%d 0x%x 0x%x %s", vector, address, data, masked ? "masked" : "unmasked"));
        }

        @Override
        public void onMessage(int vector, long address, int data) {
            msiEvents.add("message " + vector);
        }
    };

    /**
     * An Intel-like NIC: BAR0 mem32 128 KiB, BAR2 I/O 32 bytes, BAR3/4 mem64 prefetchable 16 KiB holding the
     * MSI-X table (64 vectors at 0x2000) and PBA (0x3000), a 64 KiB ROM; capabilities PM at 0x40, MSI (64-bit,
     * 4 vectors, maskable) at 0x50, MSI-X at 0x70.
     */
    static FakeVfioDevice nic() {
        FakeVfioDevice d = new FakeVfioDevice();
        d.region(0, 0x20000, MMAP).region(2, 32, RW).region(3, 0x4000, MMAP).region(vfio_h.VFIO_PCI_ROM_REGION_INDEX(), 0x10000, 1);
        d.set(0x00, 2, 0x8086);
        d.set(0x02, 2, 0x10d3);
        d.set(0x06, 2, 0x0010); // status: capabilities list
        d.set(0x10, 4, 0x0); // BAR0: mem32
        d.set(0x18, 4, 0x1); // BAR2: I/O
        d.set(0x1c, 4, 0xc); // BAR3: mem64 prefetchable
        d.set(0x34, 1, 0x40);
        d.set(0x3d, 1, 1); // INTA#
        d.set(0x40, 2, 0x5001); // PM, next 0x50
        d.set(0x42, 2, 0x0003);
        d.set(0x50, 2, 0x7005); // MSI, next 0x70
        d.set(0x52, 2, 0x0184); // per-vector mask, 64-bit, MMC = 2 (4 vectors)
        d.set(0x70, 2, 0x0011); // MSI-X, last
        d.set(0x72, 2, 63);
        d.set(0x74, 4, 0x2000 | 3);
        d.set(0x78, 4, 0x3000 | 3);
        return d;
    }

    @Test
    void identityPinAndCapabilityListComeFromTheDevice() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        assertEquals(0x10d38086, f.configRead(0, 4));
        assertEquals(1, f.interruptPin());
        List<String> caps = new ArrayList<>();
        for (int at = f.configRead(0x34, 1); at != 0; at = f.configRead(at + 1, 1)) {
            caps.add(String.format("0x%02x@0x%02x", f.configRead(at, 1), at));
        }
        assertEquals(List.of("0x01@0x40", "0x05@0x50", "0x11@0x70"), caps);
        assertEquals(0x0003, f.configRead(0x42, 2));
        // A device register changing under us shows through.
        d.set(0x42, 2, 0x0007);
        assertEquals(0x0007, f.configRead(0x42, 2));
        assertEquals(0, f.configRead(0x100, 4), "beyond a 256-byte config region");
    }

    @Test
    void barsAreSizedFromRegionsAndNeverWrittenToTheDevice() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        assertEquals(new PciBar(PciBar.Kind.MEMORY32, 0x20000, false), f.bar(0));
        assertEquals(new PciBar(PciBar.Kind.IO, 32, false), f.bar(2));
        assertEquals(new PciBar(PciBar.Kind.MEMORY64, 0x4000, true), f.bar(3));
        assertNull(f.bar(1));
        for (int bar = 0; bar < 6; bar++) {
            f.configWrite(0x10 + 4 * bar, 4, 0xFFFF_FFFF);
        }
        assertEquals(0xFFFE_0000, f.configRead(0x10, 4));
        assertEquals(0, f.configRead(0x14, 4));
        assertEquals(0xFFFF_FFE1, f.configRead(0x18, 4));
        assertEquals(0xFFFF_C00C, f.configRead(0x1c, 4));
        assertEquals(0xFFFF_FFFF, f.configRead(0x20, 4));
        assertEquals(0, f.configRead(0x24, 4));
        assertEquals(List.of(), d.configWritesIn(0x10, 0x28));
        assertEquals(0xc, d.get(7, 0x1c, 4), "the device's BAR is untouched");
    }

    @Test
    void romBarIsEmulatedWithItsEnableBit() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        f.configWrite(0x30, 4, 0xFFFF_FFFF);
        assertEquals(0xFFFF_0001, f.configRead(0x30, 4));
        f.configWrite(0x30, 4, 0xFEB0_0001);
        assertEquals(0xFEB0_0001, f.configRead(0x30, 4));
        assertEquals(List.of(), d.configWritesIn(0x30, 0x34));
        // No ROM: reads 0 whatever is written.
        FakeVfioDevice noRom = nic();
        noRom.regions[vfio_h.VFIO_PCI_ROM_REGION_INDEX()] = null;
        VfioPciFunction g = new VfioPciFunction(noRom, listener);
        g.configWrite(0x30, 4, 0xFFFF_FFFF);
        assertEquals(0, g.configRead(0x30, 4));
    }

    @Test
    void commandDecodeBitsAreEmulatedAndAlsoReachTheDevice() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        List<String> bars = new ArrayList<>();
        f.addBarListener(new BarListener() {
            @Override
            public void barMapped(PciFunction function, int index, PciBar bar, long address) {
                bars.add("map " + index + " 0x" + Long.toHexString(address));
            }

            @Override
            public void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
                bars.add("unmap " + index);
            }
        });
        f.configWrite(0x10, 4, 0xC000_0000);
        f.configWrite(0x04, 2, 0x0006); // memory + bus master
        assertEquals(List.of("map 0 0xc0000000"), bars);
        assertEquals(0x0006, d.get(7, 0x04, 2), "the device decodes and masters too");
        assertEquals(0x0006, f.configRead(0x04, 2));
        // The device's own memory bit does not decide what the guest sees.
        d.set(0x04, 2, 0x0004);
        assertEquals(0x0006, f.configRead(0x04, 2));
        // INTx disable (not emulated here) is the device's.
        d.set(0x04, 2, 0x0406);
        assertEquals(0x0406, f.configRead(0x04, 2));
        f.configWrite(0x04, 2, 0x0000);
        assertEquals(List.of("map 0 0xc0000000", "unmap 0"), bars);
        assertEquals(0, d.get(7, 0x04, 2));
    }

    @Test
    void msiIsEmulatedAtTheDevicesOffset() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        assertEquals(0x0184, f.configRead(0x52, 2));
        f.configWrite(0x54, 4, 0xFEE0_0000);
        f.configWrite(0x58, 4, 0);
        f.configWrite(0x5C, 2, 0x41);
        msiEvents.clear();
        f.configWrite(0x50, 4, (0x0184 | 0x0020 | 0x0001) << 16 | 0x7005); // enable 4 vectors, dword with id/next
        assertEquals(List.of("0 0xfee00000 0x40 unmasked", "1 0xfee00000 0x41 unmasked",
                "2 0xfee00000 0x42 unmasked", "3 0xfee00000 0x43 unmasked"), msiEvents);
        assertEquals(0x01A5, f.configRead(0x52, 2));
        assertEquals(0xFEE0_0000, f.configRead(0x54, 4));
        assertEquals(0x41, f.configRead(0x5C, 2));
        f.configWrite(0x60, 4, 0x2); // mask vector 1
        assertTrue(msiEvents.getLast().startsWith("1 0xfee00000 0x41 masked"), msiEvents.toString());
        assertEquals(0x2, f.configRead(0x60, 4));
        assertTrue(f.msi().enabled());
        assertEquals(List.of(), d.configWritesIn(0x54, 0x68), "MSI address, data and masks never reach the device");
        assertEquals(0x01A5, d.get(7, 0x52, 2), "message control reaches the device, as the command register does");
    }

    @Test
    void msi32BitLayoutIsTranslated() {
        FakeVfioDevice d = nic();
        d.set(0x52, 2, 0x0000); // 1 vector, 32-bit address, no masking: data at +8
        VfioPciFunction f = new VfioPciFunction(d, listener);
        f.configWrite(0x54, 4, 0xFEE0_1000);
        f.configWrite(0x58, 2, 0x22);
        msiEvents.clear();
        f.configWrite(0x52, 2, 0x0001);
        assertEquals(List.of("0 0xfee01000 0x22 unmasked"), msiEvents);
        assertEquals(0x0001, f.configRead(0x52, 2), "64-bit capable reads as the device's 0");
        assertEquals(0x22, f.configRead(0x58, 2));
        assertEquals(0x7005, f.configRead(0x50, 2), "id and next stay the device's");
    }

    /**
     * The bus dispatches by an access's first byte, so a guest can cross a BAR's end (issue 15): such an access reads
     * all ones and its write is dropped, without asking the device (which would refuse it: a vfio-user client logs
     * each refused posted write). Found by AssignedDeviceProperties (vfio-user-pci).
     */
    @Test
    void anAccessAcrossTheBarsEndNeverReachesTheDevice() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        var bar = f.region(2);
        long size = f.bar(2).size();
        bar.write(size - 4, 8, -1L);
        bar.write(size - 1, 2, -1L);
        bar.write(-1, 4, -1L);
        assertEquals(-1L, bar.read(size - 4, 8));
        assertEquals(0xFFFF, bar.read(size - 1, 2));
        assertEquals(0xFFFF_FFFFL, bar.read(Long.MAX_VALUE, 4));
        assertEquals(0, d.refused, "no access outside the BAR reached the device");
        assertEquals(List.of(), d.writes);
        bar.write(size - 4, 4, 0x12345678L);
        assertEquals(0x12345678L, bar.read(size - 4, 4), "the BAR's last dword still works");
    }

    @Test
    void msixTableAndPbaAreEmulatedTheRestOfTheBarIsTheDevice() {
        FakeVfioDevice d = nic();
        VfioPciFunction f = new VfioPciFunction(d, listener);
        assertEquals(63, f.configRead(0x72, 2));
        assertEquals(0x2003, f.configRead(0x74, 4));
        assertEquals(0x3003, f.configRead(0x78, 4));
        f.configWrite(0x72, 2, 0x8000);
        assertTrue(f.msix().enabled());
        assertEquals(0x803F, f.configRead(0x72, 2));
        assertEquals(List.of(new FakeVfioDevice.Write(7, 0x72, 2)), d.configWritesIn(0x72, 0x7C),
                "message control reaches the device; table and PBA offsets do not");
        var bar = f.region(3);
        msiEvents.clear();
        bar.write(0x2000 + 16 * 5, 4, 0xFEE0_0000L);
        bar.write(0x2000 + 16 * 5 + 8, 4, 0x55);
        bar.write(0x2000 + 16 * 5 + 12, 4, 0);
        assertEquals("5 0xfee00000 0x55 unmasked", msiEvents.getLast(), msiEvents.toString());
        assertTrue(msiEvents.stream().allMatch(e -> e.startsWith("5 ")), msiEvents.toString());
        assertEquals(0x55, bar.read(0x2000 + 16 * 5 + 8, 4));
        assertEquals(0, d.get(3, 0x2000 + 16 * 5 + 8, 4), "the device's table is untouched");
        bar.write(0x100, 4, 0xDEADBEEFL);
        assertEquals(0xDEADBEEF, d.get(3, 0x100, 4));
        d.regions[0][0x10] = 0x5a;
        assertEquals(0x5a, f.region(0).read(0x10, 1));
    }

    @Test
    void msixPagesTrapAndTheRestMayBeMapped() {
        VfioPciFunction f = new VfioPciFunction(nic(), listener);
        assertEquals(List.of(new Area(0x2000, 0x2000)), f.trappedPages(3, 4096));
        assertEquals(List.of(new Area(0, 0x2000)), f.mmapAreas(3, 4096));
        assertEquals(List.of(new Area(0, 0x20000)), f.mmapAreas(0, 4096));
        assertEquals(List.of(), f.mmapAreas(2, 4096), "the I/O BAR is not mmappable");
    }

    @Test
    void unsupportedLayoutsFailWithTheDeviceName() {
        FakeVfioDevice d = nic();
        d.set(0x78, 4, 0x3000 | 0); // PBA in BAR 0
        String m = assertThrows(IllegalArgumentException.class, () -> new VfioPciFunction(d, listener)).getMessage();
        assertTrue(m.startsWith("fake: MSI-X table in BAR 3 and PBA in BAR 0"), m);
        FakeVfioDevice loop = nic();
        loop.set(0x71, 1, 0x40);
        m = assertThrows(IllegalArgumentException.class, () -> new VfioPciFunction(loop, listener)).getMessage();
        assertTrue(m.contains("capability list is broken"), m);
    }

    /** The attach error for {@code d}: an IllegalArgumentException of one line naming the device (never another exception). */
    String attachError(FakeVfioDevice d) {
        String m = assertThrows(IllegalArgumentException.class, () -> new VfioPciFunction(d, listener)).getMessage();
        assertTrue(m.startsWith("fake: "), m);
        assertFalse(m.contains("\n"), m);
        return m;
    }

    /** The nic with PM at 0x40 pointing to a last capability at {@code at} (the MSI and MSI-X at 0x50, 0x70 are off the list). */
    static FakeVfioDevice nicWithLastCapabilityAt(int at, int id) {
        FakeVfioDevice d = nic();
        d.set(0x40, 2, at << 8 | 0x01);
        d.set(at, 2, id);
        return d;
    }

    @Test
    void badCapabilityLayoutsAreOneClearAttachError() {
        // MSI (64-bit, per-vector mask: 0x18 bytes) at 0xF0 runs to 0x107.
        FakeVfioDevice msiF0 = nicWithLastCapabilityAt(0xF0, 0x05);
        msiF0.set(0xF2, 2, 0x0184);
        String m = attachError(msiF0);
        assertTrue(m.contains("MSI capability at 0xf0") && m.contains("0x100"), m);
        // The smallest MSI (32-bit, no masking: 0x0A bytes) at 0xFC runs to 0x105.
        FakeVfioDevice msiFc = nicWithLastCapabilityAt(0xFC, 0x05);
        m = attachError(msiFc);
        assertTrue(m.contains("MSI capability at 0xfc"), m);
        // The same with 4 KiB of config space: it would overlay the extended capabilities at 0x100.
        FakeVfioDevice msiFcExtended = nicWithLastCapabilityAt(0xFC, 0x05);
        msiFcExtended.region(vfio_h.VFIO_PCI_CONFIG_REGION_INDEX(), 4096, 3);
        System.arraycopy(msiFc.config(), 0, msiFcExtended.config(), 0, 256);
        m = attachError(msiFcExtended);
        assertTrue(m.contains("MSI capability at 0xfc"), m);
        // MSI-X (0x0C bytes) at 0xF8: its PBA dword would be at 0x100.
        FakeVfioDevice msixF8 = nicWithLastCapabilityAt(0xF8, 0x11);
        msixF8.set(0xFA, 2, 63);
        msixF8.set(0xFC, 4, 0x2000 | 3);
        m = attachError(msixF8);
        assertTrue(m.contains("MSI-X capability at 0xf8"), m);
        // MSI-X table/PBA BAR indicator 6 or 7: reserved (PCI Local Bus 3.0, 6.8.2.4).
        for (int bir = 6; bir <= 7; bir++) {
            FakeVfioDevice d = nic();
            d.set(0x74, 4, 0x2000 | bir);
            d.set(0x78, 4, 0x3000 | bir);
            m = attachError(d);
            assertTrue(m.contains("BAR indicator " + bir), m);
        }
        // A table of 64 vectors (1 KiB) at 0x3F00 of a 16 KiB BAR runs past it; so does a PBA at 0x4000.
        FakeVfioDevice table = nic();
        table.set(0x74, 4, 0x3F00 | 3);
        m = attachError(table);
        assertTrue(m.contains("MSI-X table") && m.contains("BAR 3"), m);
        FakeVfioDevice tableFar = nic();
        tableFar.set(0x74, 4, 0xFFFF_FFF8 | 3);
        m = attachError(tableFar);
        assertTrue(m.contains("MSI-X table") && m.contains("BAR 3"), m);
        FakeVfioDevice pba = nic();
        pba.set(0x78, 4, 0x4000 | 3);
        m = attachError(pba);
        assertTrue(m.contains("MSI-X PBA") && m.contains("BAR 3"), m);
        // At the very end they fit: the table ends at 0x4000, the PBA (8 bytes) is at 0x2FF8.
        FakeVfioDevice fits = nic();
        fits.set(0x74, 4, 0x3C00 | 3);
        fits.set(0x78, 4, 0x2FF8 | 3);
        assertEquals(64, new VfioPciFunction(fits, listener).msix().vectors());
    }
}
