package dev.panamax.pci;

/**
 * Names of configuration space registers for {@code --trace}: the type 0 header's fields (PCI Local Bus Spec
 * 3.0, 6.1, figure 6-1) by the names of {@link PciConfigSpace}, and CONFIG_ADDRESS (3.2.2.3.2) or an ECAM offset
 * decoded as bus:dev.fn and register.
 */
public final class PciRegisterNames {
    private PciRegisterNames() {
    }

    /** The type 0 header: offset, length in bytes, name; in offset order, covering 0x00..0x3F. */
    private static final Object[][] HEADER = {
            {0x00, 2, "VENDOR_ID"}, {0x02, 2, "DEVICE_ID"}, {0x04, 2, "COMMAND"}, {0x06, 2, "STATUS"},
            {0x08, 1, "REVISION_ID"}, {0x09, 1, "CLASS_PROG"}, {0x0A, 2, "CLASS_DEVICE"},
            {0x0C, 1, "CACHE_LINE_SIZE"}, {0x0D, 1, "LATENCY_TIMER"}, {0x0E, 1, "HEADER_TYPE"}, {0x0F, 1, "BIST"},
            {0x10, 4, "BAR0"}, {0x14, 4, "BAR1"}, {0x18, 4, "BAR2"}, {0x1C, 4, "BAR3"}, {0x20, 4, "BAR4"}, {0x24, 4, "BAR5"},
            {0x28, 4, "CARDBUS_CIS"}, {0x2C, 2, "SUBSYSTEM_VENDOR_ID"}, {0x2E, 2, "SUBSYSTEM_ID"},
            {0x30, 4, "ROM_ADDRESS"}, {0x34, 1, "CAPABILITY_LIST"}, {0x35, 7, "reserved"},
            {0x3C, 1, "INTERRUPT_LINE"}, {0x3D, 1, "INTERRUPT_PIN"}, {0x3E, 1, "MIN_GNT"}, {0x3F, 1, "MAX_LAT"},
    };

    /**
     * @param register byte offset in configuration space, 0..4095
     * @return the header field holding it ("BAR0", "COMMAND"), with "+n" for a byte inside a field
     *         ("BAR0+2"); "cap 0x44" for the capability area (0x40..0xFF), "ext 0x100" for PCIe extended space
     */
    public static String name(int register) {
        if (register < 0 || register >= PciConfigSpace.EXTENDED_SIZE) {
            return "0x" + Integer.toHexString(register) + " (outside config space)";
        }
        if (register >= PciConfigSpace.SIZE) {
            return "ext 0x" + Integer.toHexString(register);
        }
        if (register >= PciConfigSpace.HEADER_END) {
            return "cap 0x" + Integer.toHexString(register);
        }
        for (Object[] f : HEADER) {
            int offset = (Integer) f[0], length = (Integer) f[1];
            if (register < offset + length) {
                return register == offset ? (String) f[2] : f[2] + "+" + (register - offset);
            }
        }
        throw new AssertionError("header table does not cover 0x" + Integer.toHexString(register));
    }

    /**
     * @param configAddress a CONFIG_ADDRESS value (bit 31 enable, 23:16 bus, 15:11 device, 10:8 function, 7:2 dword)
     * @return e.g. "00:03.0 BAR0", with " (disabled)" when bit 31 is clear
     */
    public static String configAddress(int configAddress) {
        return bdf(configAddress) + " " + name(configAddress & 0xFC)
                + ((configAddress & PciBus.CONFIG_ENABLE) == 0 ? " (disabled)" : "");
    }

    /** @return the bus, device and function of a CONFIG_ADDRESS value as "bb:dd.f" (hex, as lspci writes them) */
    public static String bdf(int configAddress) {
        return bdf((configAddress >>> 16) & 0xFF, (configAddress >>> 11) & 0x1F, (configAddress >>> 8) & 0x7);
    }

    /** @return "bb:dd.f" (hex, as lspci writes them) */
    public static String bdf(int bus, int device, int function) {
        return String.format("%02x:%02x.%d", bus, device, function);
    }
}
