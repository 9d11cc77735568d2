package dev.panamax.pci;

import dev.panamax.core.bus.Bus;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class PciRegisterNamesTest {
    @Test
    void everyHeaderByteHasItsFieldsName() {
        String[] expected = new String[0x40];
        String[][] fields = {
                {"VENDOR_ID", "2"}, {"DEVICE_ID", "2"}, {"COMMAND", "2"}, {"STATUS", "2"}, {"REVISION_ID", "1"},
                {"CLASS_PROG", "1"}, {"CLASS_DEVICE", "2"}, {"CACHE_LINE_SIZE", "1"}, {"LATENCY_TIMER", "1"},
                {"HEADER_TYPE", "1"}, {"BIST", "1"}, {"BAR0", "4"}, {"BAR1", "4"}, {"BAR2", "4"}, {"BAR3", "4"},
                {"BAR4", "4"}, {"BAR5", "4"}, {"CARDBUS_CIS", "4"}, {"SUBSYSTEM_VENDOR_ID", "2"}, {"SUBSYSTEM_ID", "2"},
                {"ROM_ADDRESS", "4"}, {"CAPABILITY_LIST", "1"}, {"reserved", "7"}, {"INTERRUPT_LINE", "1"},
                {"INTERRUPT_PIN", "1"}, {"MIN_GNT", "1"}, {"MAX_LAT", "1"}};
        int at = 0;
        for (String[] f : fields) {
            for (int i = 0; i < Integer.parseInt(f[1]); i++) {
                expected[at++] = i == 0 ? f[0] : f[0] + "+" + i;
            }
        }
        assertEquals(0x40, at);
        for (int r = 0; r < 0x40; r++) {
            assertEquals(expected[r], PciRegisterNames.name(r), "offset 0x" + Integer.toHexString(r));
        }
        // The offsets agree with PciConfigSpace's constants.
        assertEquals("BAR0", PciRegisterNames.name(PciConfigSpace.BASE_ADDRESS_0));
        assertEquals("ROM_ADDRESS", PciRegisterNames.name(PciConfigSpace.ROM_ADDRESS));
        assertEquals("INTERRUPT_PIN", PciRegisterNames.name(PciConfigSpace.INTERRUPT_PIN));
        assertEquals("SUBSYSTEM_ID", PciRegisterNames.name(PciConfigSpace.SUBSYSTEM_ID));
        assertEquals("cap 0x40", PciRegisterNames.name(0x40));
        assertEquals("cap 0xff", PciRegisterNames.name(0xFF));
        assertEquals("ext 0x100", PciRegisterNames.name(0x100));
        assertEquals("0x1000 (outside config space)", PciRegisterNames.name(0x1000));
    }

    @Test
    void configAddressDecodedAsBusDeviceFunctionRegister() {
        assertEquals("00:03.0 BAR0", PciRegisterNames.configAddress(0x8000_0000 | 3 << 11 | 0x10));
        assertEquals("01:1f.7 COMMAND (disabled)", PciRegisterNames.configAddress(1 << 16 | 31 << 11 | 7 << 8 | 0x04));
        assertEquals("ff:00.0 cap 0xfc", PciRegisterNames.configAddress(0x80FF_00FC));
    }

    @Test
    void portsDescribeTheirAccessInTheBusTrace() {
        PciBus pci = new PciBus(null);
        Bus pio = new Bus("pio");
        pci.registerPorts(pio);
        var address = pio.find(PciBus.CONFIG_ADDRESS).device();
        var data = pio.find(PciBus.CONFIG_DATA).device();
        assertEquals("CONFIG_ADDRESS 00:00.0 COMMAND", address.describe(0, 4, true, 0x8000_0004L));
        assertEquals("CONFIG_ADDRESS (not a dword access: ignored)", address.describe(3, 1, true, 0));
        pio.write(PciBus.CONFIG_ADDRESS, 4, 0x8000_0004L);
        String bridge = pci.hostBridge().name();
        assertEquals("CONFIG_DATA 00:00.0 COMMAND (" + bridge + ")", data.describe(0, 2, false, 0));
        assertEquals("CONFIG_DATA 00:00.0 STATUS (" + bridge + ")", data.describe(2, 2, false, 0));
        pio.write(PciBus.CONFIG_ADDRESS, 4, 0x8000_0000L | 5 << 11 | 0x10);
        assertEquals("CONFIG_DATA 00:05.0 BAR0 (no device)", data.describe(0, 4, true, 0xFFFF_FFFFL));
        pio.write(PciBus.CONFIG_ADDRESS, 4, 5 << 11);
        assertEquals("CONFIG_DATA 00:05.0 VENDOR_ID (disabled)", data.describe(0, 4, false, 0));
    }
}
