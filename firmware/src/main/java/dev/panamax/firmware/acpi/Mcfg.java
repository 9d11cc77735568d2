package dev.panamax.firmware.acpi;

import java.nio.ByteBuffer;

/**
 * The PCI Express memory-mapped configuration space table, MCFG (PCI Firmware Specification 3.2, 4.1.2, tables
 * 4-2 and 4-3): the header (signature "MCFG", revision 1), 8 reserved bytes, then one 16-byte allocation per
 * segment:
 * <pre>
 *   44 Base Address (8)   52 PCI Segment Group (2)   54 Start Bus (1)   55 End Bus (1)   56 Reserved (4)
 * </pre>
 * The Base Address is that of bus 0's configuration space even when Start Bus is higher.
 */
public final class Mcfg {
    private Mcfg() {
    }

    /** Revision of the MCFG. */
    public static final int REVISION = 1;
    /** Offset of the first allocation. */
    public static final int ALLOCATIONS = 44;
    /** Size of one allocation structure. */
    public static final int ALLOCATION_SIZE = 16;
    /** Size of the table with one allocation. */
    public static final int SIZE = ALLOCATIONS + ALLOCATION_SIZE;

    /**
     * @param ecamBase guest-physical base of the ECAM window (bus 0)
     * @param segment  the PCI segment group
     * @param busStart first bus decoded
     * @param busEnd   last bus decoded
     * @return the 60-byte table with one allocation
     */
    public static byte[] build(long ecamBase, int segment, int busStart, int busEnd) {
        ByteBuffer b = AcpiTable.start("MCFG", SIZE, REVISION);
        b.putLong(0);
        b.putLong(ecamBase);
        b.putShort((short) segment);
        b.put((byte) busStart);
        b.put((byte) busEnd);
        b.putInt(0);
        return AcpiTable.finish(b);
    }

    /** @return the MCFG of {@code m}: segment 0, its ECAM base and bus range */
    public static byte[] build(AcpiMachine m) {
        return build(m.ecamBase(), 0, m.busStart(), m.busEnd());
    }
}
