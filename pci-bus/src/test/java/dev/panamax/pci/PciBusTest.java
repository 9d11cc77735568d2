package dev.panamax.pci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.memory.X86Layout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PciBusTest {
    private final Bus pio = new Bus("pio");

    private static int address(int bus, int device, int function, int register) {
        return PciBus.CONFIG_ENABLE | bus << 16 | device << 11 | function << 8 | register;
    }

    private long configRead(int device, int function, int register, int size) {
        pio.write(0xCF8, 4, address(0, device, function, register & 0xFC));
        return pio.read(0xCFC + (register & 3), size);
    }

    private void configWrite(int device, int function, int register, int size, long value) {
        pio.write(0xCF8, 4, address(0, device, function, register & 0xFC));
        pio.write(0xCFC + (register & 3), size, value);
    }

    /** A function with a fully writable scratch dword at 0x40. */
    private static PciFunction scratchFunction(int pin) {
        var f = new PciFunction("scratch", new PciConfigSpace(PciConfigSpace.SIZE));
        f.config().initHeader(0x1AF4, 0x1234, 0, 0x0000FF, 0, 0);
        f.config().setWritable(0x40, 4, 0xFFFFFFFF);
        f.setInterruptPin(pin);
        return f;
    }

    @Test
    void hostBridgeIdentity() {
        new PciBus(null).registerPorts(pio);
        assertEquals(0x29C08086L, configRead(0, 0, 0x00, 4));
        assertEquals(0x8086, configRead(0, 0, 0x00, 2));
        assertEquals(0x29C0, configRead(0, 0, 0x02, 2));
        assertEquals(0x0600, configRead(0, 0, PciConfigSpace.CLASS_DEVICE, 2)); // what pci_sanity_check reads
        assertEquals(0x06000000L, configRead(0, 0, 0x08, 4));
        assertEquals(0, configRead(0, 0, PciConfigSpace.HEADER_TYPE, 1));
        assertEquals(0, configRead(0, 0, PciConfigSpace.INTERRUPT_PIN, 1));
        assertEquals(0, configRead(0, 0, PciConfigSpace.BASE_ADDRESS_0, 4));
    }

    @Test
    void linuxType1Probe() {
        new PciBus(null).registerPorts(pio);
        // arch/x86/pci/direct.c pci_check_type1
        pio.write(0xCFB, 1, 0x01);
        long tmp = pio.read(0xCF8, 4);
        pio.write(0xCF8, 4, 0x80000000L);
        assertEquals(0x80000000L, pio.read(0xCF8, 4));
        pio.write(0xCF8, 4, tmp);
        assertEquals(0, pio.read(0xCF8, 4));
        // Reserved bits read as 0.
        pio.write(0xCF8, 4, 0xFFFFFFFFL);
        assertEquals(0x80FFFFFCL, pio.read(0xCF8, 4));
        assertEquals(0xFF, pio.read(0xCF9, 1));
        assertEquals(0xFFFF, pio.read(0xCF8, 2));
    }

    @Test
    void configDataAtEveryWidthAndOffset() {
        var bus = new PciBus(null);
        bus.registerPorts(pio);
        bus.attach(3, 2, scratchFunction(0));
        configWrite(3, 2, 0x40, 4, 0x44332211L);
        for (int i = 0; i < 4; i++) {
            assertEquals(0x11L * (i + 1), configRead(3, 2, 0x40 + i, 1), "byte " + i);
        }
        for (int i = 0; i < 3; i++) {
            assertEquals((0x11L * (i + 2)) << 8 | 0x11L * (i + 1), configRead(3, 2, 0x40 + i, 2), "word " + i);
        }
        assertEquals(0x44332211L, configRead(3, 2, 0x40, 4));
        for (int i = 0; i < 4; i++) {
            configWrite(3, 2, 0x40 + i, 1, 0xA0 + i);
        }
        assertEquals(0xA3A2A1A0L, configRead(3, 2, 0x40, 4));
        configWrite(3, 2, 0x41, 2, 0xBEEF);
        assertEquals(0xA3BEEFA0L, configRead(3, 2, 0x40, 4));
        configWrite(3, 2, 0x42, 2, 0xCAFE);
        assertEquals(0xCAFEEFA0L, configRead(3, 2, 0x40, 4));
        // An access running past 0xCFF does not reach the device.
        pio.write(0xCF8, 4, address(0, 3, 2, 0x40));
        assertEquals(0xFFFF, pio.read(0xCFF, 2));
        pio.write(0xCFF, 2, 0);
        assertEquals(0xCAFEEFA0L, configRead(3, 2, 0x40, 4));
    }

    @Test
    void absentDevicesReadAllOnes() {
        var bus = new PciBus(null);
        bus.registerPorts(pio);
        for (int size : new int[] {1, 2, 4}) {
            long ones = Bus.ones(size);
            assertEquals(ones, configRead(1, 0, 0, size));
            assertEquals(ones, configRead(0, 1, 0, size));
            assertEquals(ones, configRead(31, 7, 0xFC, size));
            pio.write(0xCF8, 4, address(1, 0, 0, 0)); // bus 1 does not exist
            assertEquals(ones, pio.read(0xCFC, size));
            pio.write(0xCF8, 4, 0); // enable bit clear
            assertEquals(ones, pio.read(0xCFC, size));
        }
        configWrite(1, 0, 0, 4, 0); // dropped, no error
        // With enable clear, a write does not reach the host bridge either.
        pio.write(0xCF8, 4, 0x40);
        pio.write(0xCFC, 4, 0);
        assertEquals(0x29C08086L, configRead(0, 0, 0, 4));
    }

    @Test
    void attachChecksSlots() {
        var bus = new PciBus(null);
        assertThrows(IllegalArgumentException.class, () -> bus.attach(0, 0, scratchFunction(0)));
        assertThrows(IllegalArgumentException.class, () -> bus.attach(32, 0, scratchFunction(0)));
        assertThrows(IllegalArgumentException.class, () -> bus.attach(1, 8, scratchFunction(0)));
        assertEquals(1, bus.attach(scratchFunction(0)));
        assertEquals(2, bus.attach(scratchFunction(0)));
        assertTrue(bus.device(0, 0) instanceof PciHostBridge);
    }

    @Test
    void interruptPinIsChecked() {
        var f = scratchFunction(4);
        assertEquals(4, f.interruptPin());
        assertThrows(IllegalArgumentException.class, () -> f.setInterruptPin(5));
        assertThrows(IllegalArgumentException.class, () -> f.setInterruptPin(-1));
    }

    @Test
    void intxSwizzle() {
        assertEquals(16, PciBus.gsi(0, 1));
        assertEquals(17, PciBus.gsi(1, 1));
        assertEquals(19, PciBus.gsi(3, 1));
        assertEquals(16, PciBus.gsi(4, 1));
        assertEquals(18, PciBus.gsi(1, 2));
        assertEquals(16, PciBus.gsi(1, 4));
        assertEquals(17, PciBus.gsi(31, 3));
        assertThrows(IllegalArgumentException.class, () -> PciBus.gsi(1, 0));
        assertThrows(IllegalArgumentException.class, () -> PciBus.gsi(1, 5));
    }

    @Test
    void attachConnectsIntxToItsGsi() {
        Map<Integer, List<Boolean>> lines = new HashMap<>();
        var bus = new PciBus(gsi -> level -> lines.computeIfAbsent(gsi, g -> new ArrayList<>()).add(level));
        var f = scratchFunction(2);
        bus.attach(5, 0, f);
        assertEquals(PciBus.gsi(5, 2), f.configRead(PciConfigSpace.INTERRUPT_LINE, 1));
        f.setIntx(true);
        f.setIntx(false);
        assertEquals(Map.of(18, List.of(true, false)), lines);
    }

    /** The bus's own description of its INTx# wiring (the MP table built from it is checked in the vmm module). */
    @Test
    void intxRoutesOnePerDeviceAndPin() {
        var bus = new PciBus(null);
        bus.attach(1, 0, scratchFunction(1));
        bus.attach(2, 0, scratchFunction(1));
        bus.attach(2, 1, scratchFunction(2));
        bus.attach(2, 2, scratchFunction(2)); // shares INTB# with function 1: one route
        bus.attach(3, 0, scratchFunction(0)); // no pin: no route
        assertEquals(List.of(new PciBus.IntxRoute(1, 1, 17), new PciBus.IntxRoute(2, 1, 18),
                new PciBus.IntxRoute(2, 2, 19)), bus.intxRoutes());
    }

    @Test
    void ecamReachesTheSameConfigSpace() {
        var bus = new PciBus(null);
        var mmio = new Bus("mmio");
        bus.registerEcam(mmio);
        long base = X86Layout.ECAM_BASE;
        assertEquals(X86Layout.ECAM_SIZE, mmio.find(base).length());
        var f = scratchFunction(0);
        bus.attach(3, 2, f);
        assertEquals(0x29C08086L, mmio.read(base, 4));
        long fn = base + (3 << 15 | 2 << 12);
        mmio.write(fn + 0x41, 2, 0xBEEF);
        assertEquals(0xBEEF00L, f.configRead(0x40, 4));
        assertEquals(0xBE, mmio.read(fn + 0x42, 1));
        assertEquals(0, mmio.read(fn + 0x100, 4)); // no extended config space: reads 0
        assertEquals(0, mmio.read(fn + 0xFFF, 1));
        mmio.write(fn + 0xFFC, 4, 0x1234); // dropped
        assertEquals(0, mmio.read(fn + 0xFFC, 4));
        assertEquals(0xFFFFFFFFL, mmio.read(base + (1 << 15), 4)); // absent device
        assertEquals(0xFFFF, mmio.read(fn + 0x43, 2)); // crosses a dword
        mmio.write(fn + 0x43, 2, 0); // dropped
        assertEquals(0xBEEF00L, f.configRead(0x40, 4));
    }

    @Test
    void ecamDecodesBusDeviceFunctionAndRegisterAtEveryWidth() {
        var bus = new PciBus(null);
        var mmio = new Bus("mmio");
        bus.registerEcam(mmio);
        var f = scratchFunction(0);
        bus.attach(31, 7, f);
        long fn = X86Layout.ECAM_BASE + (31 << 15 | 7 << 12);
        mmio.write(fn + 0x40, 4, 0x44332211L);
        for (int i = 0; i < 4; i++) {
            assertEquals(0x11L * (i + 1), mmio.read(fn + 0x40 + i, 1), "byte " + i);
        }
        assertEquals(0x3322L, mmio.read(fn + 0x41, 2));
        for (int i = 0; i < 4; i++) {
            mmio.write(fn + 0x40 + i, 1, 0xA0 + i);
        }
        assertEquals(0xA3A2A1A0L, mmio.read(fn + 0x40, 4));
        // An 8-byte access is two dwords, low first: the scratch dword and the read-only zeros after it.
        assertEquals(0xA3A2A1A0L, mmio.read(fn + 0x40, 8));
        mmio.write(fn + 0x3C, 8, 0x1122334455667788L);
        assertEquals(0x11223344L, f.configRead(0x40, 4));
        assertEquals(0x88, f.configRead(PciConfigSpace.INTERRUPT_LINE, 1));
        // Buses 1..255 have nothing on them; the last byte of the window is bus 255, device 31, function 7.
        for (int b : new int[] {1, 0x80, 0xFF}) {
            long other = X86Layout.ECAM_BASE + ((long) b << 20 | 31 << 15 | 7 << 12);
            assertEquals(0xFFFFFFFFL, mmio.read(other + 0x40, 4), "bus " + b);
            assertEquals(-1L, mmio.read(other + 0x40, 8), "bus " + b);
            mmio.write(other + 0x40, 4, 0);
        }
        assertEquals(0xFF, mmio.read(X86Layout.ECAM_BASE + X86Layout.ECAM_SIZE - 1, 1));
        assertEquals(0x11223344L, f.configRead(0x40, 4));
    }

    /** The same registers through CONFIG_ADDRESS/CONFIG_DATA and through ECAM. */
    @Test
    void portsAndEcamAgree() {
        var bus = new PciBus(null);
        var mmio = new Bus("mmio");
        bus.registerPorts(pio);
        bus.registerEcam(mmio);
        bus.attach(5, 1, scratchFunction(2));
        long fn = X86Layout.ECAM_BASE + (5 << 15 | 1 << 12);
        for (int register = 0; register < 0x100; register += 4) {
            assertEquals(configRead(5, 1, register, 4), mmio.read(fn + register, 4), "register 0x" + Integer.toHexString(register));
            assertEquals(configRead(0, 0, register, 4), mmio.read(X86Layout.ECAM_BASE + register, 4), "host bridge 0x"
                    + Integer.toHexString(register));
        }
        configWrite(5, 1, 0x42, 2, 0xCAFE);
        assertEquals(0xCAFE, mmio.read(fn + 0x42, 2));
        mmio.write(fn + 0x40, 1, 0x5A);
        assertEquals(0xCAFE005AL, configRead(5, 1, 0x40, 4));
    }

    /**
     * The host bridge as a guest under PNP0A08 finds it, through both mechanisms: a PCI Express capability of type
     * Root Complex Integrated Endpoint, and 4 KiB of config space whose extended part says "no capabilities".
     */
    @Test
    void hostBridgeIsAPciExpressFunctionOfTheRootComplex() {
        var bus = new PciBus(null);
        var mmio = new Bus("mmio");
        bus.registerPorts(pio);
        bus.registerEcam(mmio);
        long hb = X86Layout.ECAM_BASE;
        assertEquals(PciConfigSpace.STATUS_CAP_LIST, configRead(0, 0, PciConfigSpace.STATUS, 2) & PciConfigSpace.STATUS_CAP_LIST);
        int cap = (int) configRead(0, 0, PciConfigSpace.CAPABILITY_LIST, 1);
        assertEquals(cap, mmio.read(hb + PciConfigSpace.CAPABILITY_LIST, 1));
        assertEquals(bus.hostBridge().expressCapability(), cap);
        assertEquals(PciConfigSpace.CAP_ID_EXP, configRead(0, 0, cap, 1));
        assertEquals(0, configRead(0, 0, cap + 1, 1), "the only capability");
        int flags = (int) mmio.read(hb + cap + PciExpress.FLAGS, 2);
        assertEquals(flags, configRead(0, 0, cap + PciExpress.FLAGS, 2));
        assertEquals(2, flags & PciExpress.FLAGS_VERSION);
        assertEquals(PciExpress.TYPE_RC_INTEGRATED_ENDPOINT, (flags & PciExpress.FLAGS_TYPE) >>> 4);
        assertEquals(0, mmio.read(hb + cap + PciExpress.LNKCAP, 4), "no Link");
        // Device control keeps what software writes, through either mechanism.
        configWrite(0, 0, cap + PciExpress.DEVCTL, 2, 0x000F);
        assertEquals(0x000F, mmio.read(hb + cap + PciExpress.DEVCTL, 2));
        mmio.write(hb + cap + PciExpress.DEVCTL, 2, 0x2010);
        assertEquals(0x2010, configRead(0, 0, cap + PciExpress.DEVCTL, 2));
        // Extended space: 0 at 0x100 (not all ones, not the id repeated: Linux sizes it 4096), 0 to the end.
        assertEquals(0, mmio.read(hb + 0x100, 4));
        for (int at = 0x100; at < 0x1000; at += 0x100) {
            assertEquals(0, mmio.read(hb + at, 4));
        }
        mmio.write(hb + 0x100, 4, 0xFFFFFFFFL);
        assertEquals(0, mmio.read(hb + 0x100, 4), "read-only");
        assertEquals(0, mmio.read(hb + 0xFFC, 4));
        assertEquals(java.util.List.of(), bus.hostBridge().config().extendedCapabilities());
    }

    @Test
    void ecamAccessesAreNamedForTrace() {
        var bus = new PciBus(null);
        bus.attach(3, 0, scratchFunction(0));
        var ecam = bus.ecam();
        assertEquals("ECAM 00:03.0 BAR0 (scratch)", ecam.describe(3 << 15 | 0x10, 4, false, 0));
        assertEquals("ECAM 00:00.0 COMMAND (host-bridge)", ecam.describe(PciConfigSpace.COMMAND, 2, true, 0));
        assertEquals("ECAM 02:01.3 ext 0x104 (no device)", ecam.describe(2 << 20 | 1 << 15 | 3 << 12 | 0x104, 4, false, 0));
    }

    @Test
    void overlappingBarsDoNotCrashOrStealRanges() {
        var pio = new Bus("pio");
        var mmio = new Bus("mmio");
        var mapper = new BusBarMapper(pio, mmio);
        var a = scratchFunction(0);
        var b = scratchFunction(0);
        var regionA = new PciFunctionTest.Scratch();
        var regionB = new PciFunctionTest.Scratch();
        a.setBar(0, PciBar.memory32(0x1000), regionA);
        b.setBar(0, PciBar.memory32(0x1000), regionB);
        a.addBarListener(mapper);
        b.addBarListener(mapper);
        a.setBarAddress(0, 0xC000_0000L);
        b.setBarAddress(0, 0xC000_0000L);
        a.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY);
        b.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY); // overlaps: not mapped
        assertEquals(1, mmio.mappings().size());
        b.configWrite(PciConfigSpace.COMMAND, 2, 0); // must not remove a's range
        assertEquals(regionA, mmio.find(0xC000_0000L).device());
        b.configWrite(PciConfigSpace.BASE_ADDRESS_0, 4, 0xC000_1000);
        b.configWrite(PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MEMORY);
        assertEquals(regionB, mmio.find(0xC000_1000L).device());
    }
}
