package dev.panamax.firmware.acpi;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The Multiple APIC Description Table, signature "APIC" (ACPI 6.5, 5.2.12, table 5.19), revision 5: the header,
 * the Local Interrupt Controller Address (u32 at 36), Flags (u32 at 40, PCAT_COMPAT: the 8259 PICs are present
 * too) and the interrupt controller structures from offset 44, in this order:
 * <ul>
 *   <li>per CPU i: a Processor Local APIC (5.2.12.2, type 0, 8 bytes: UID i, APIC id i, enabled) for APIC ids
 *       below 255, a Processor Local x2APIC (5.2.12.12, type 9, 16 bytes) from 255 on (xAPIC ids stop at 254;
 *       0xFF is the broadcast id);</li>
 *   <li>one I/O APIC (5.2.12.3, type 1, 12 bytes);</li>
 *   <li>Interrupt Source Overrides (5.2.12.5, type 2, 10 bytes): ISA IRQ 0 to GSI 0, flags conforming, because
 *       Panamax keeps KVM's routing where the PIT drives I/O APIC input 0 as the MP table says
 *       ({@code MpTable.standard}: ISA IRQ i to input i) rather than the PC convention of input 2; and the SCI's
 *       IRQ to the same GSI, level-triggered, active high (the SCI is "sharable, level, active low" by default for
 *       an 8259, so without the override an OS would program the wrong polarity);</li>
 *   <li>a Local APIC NMI (5.2.12.7, type 4, 6 bytes) on LINT1 for all processors (UID 0xFF), and a Local x2APIC
 *       NMI (5.2.12.13, type 0xA, 12 bytes, UID 0xFFFFFFFF) as well when there are x2APIC entries.</li>
 * </ul>
 */
public final class Madt {
    private Madt() {
    }

    /** Revision of the MADT (ACPI 6.2 to 6.4). */
    public static final int REVISION = 5;
    /** Offset of the Local Interrupt Controller Address. */
    public static final int LOCAL_APIC_ADDRESS = 36;
    /** Offset of the Flags. */
    public static final int FLAGS = 40;
    /** Offset of the first interrupt controller structure. */
    public static final int ENTRIES = 44;
    /** Flags bit 0, PCAT_COMPAT: the system also has a PC-AT-compatible dual 8259 setup. */
    public static final int PCAT_COMPAT = 1;

    /** Structure type: Processor Local APIC. */
    public static final int LOCAL_APIC = 0;
    /** Structure type: I/O APIC. */
    public static final int IO_APIC = 1;
    /** Structure type: Interrupt Source Override. */
    public static final int INTERRUPT_SOURCE_OVERRIDE = 2;
    /** Structure type: Local APIC NMI. */
    public static final int LOCAL_APIC_NMI = 4;
    /** Structure type: Processor Local x2APIC. */
    public static final int LOCAL_X2APIC = 9;
    /** Structure type: Local x2APIC NMI. */
    public static final int LOCAL_X2APIC_NMI = 0xA;
    /** Local APIC flags bit 0: Enabled. */
    public static final int ENABLED = 1;
    /** MPS INTI flags: polarity active high (bits 0..1 = 01). */
    public static final int ACTIVE_HIGH = 0x1;
    /** MPS INTI flags: trigger mode level (bits 2..3 = 11). */
    public static final int LEVEL = 0x3 << 2;
    /** MPS INTI flags 0: polarity and trigger conform to the bus (ISA: edge, active high). */
    public static final int CONFORMS = 0;
    /** Lowest APIC id that needs a Processor Local x2APIC structure. */
    public static final int FIRST_X2APIC_ID = 0xFF;

    /**
     * @param m the machine: CPUs, local APIC address, I/O APIC, SCI
     * @return the table, checksum set
     */
    public static byte[] build(AcpiMachine m) {
        var e = new ByteArrayOutputStream();
        for (int i = 0; i < m.cpus(); i++) {
            if (i < FIRST_X2APIC_ID) {
                e.writeBytes(le().put((byte) LOCAL_APIC).put((byte) 8).put((byte) i).put((byte) i).putInt(ENABLED).array(8));
            } else {
                e.writeBytes(le().put((byte) LOCAL_X2APIC).put((byte) 16).putShort((short) 0).putInt(i).putInt(ENABLED)
                        .putInt(i).array(16));
            }
        }
        e.writeBytes(le().put((byte) IO_APIC).put((byte) 12).put((byte) m.ioApicId()).put((byte) 0)
                .putInt((int) m.ioApicAddress()).putInt(m.ioApicGsiBase()).array(12));
        e.writeBytes(override(0, 0, CONFORMS));
        e.writeBytes(override(m.sciIrq(), m.sciIrq(), ACTIVE_HIGH | LEVEL));
        e.writeBytes(le().put((byte) LOCAL_APIC_NMI).put((byte) 6).put((byte) 0xFF).putShort((short) CONFORMS)
                .put((byte) 1).array(6));
        if (m.cpus() > FIRST_X2APIC_ID) {
            e.writeBytes(le().put((byte) LOCAL_X2APIC_NMI).put((byte) 12).putShort((short) CONFORMS).putInt(-1)
                    .put((byte) 1).put((byte) 0).putShort((short) 0).array(12));
        }
        byte[] entries = e.toByteArray();
        ByteBuffer b = AcpiTable.start("APIC", ENTRIES + entries.length, REVISION);
        b.putInt((int) m.localApicAddress());
        b.putInt(PCAT_COMPAT);
        b.put(entries);
        return AcpiTable.finish(b);
    }

    private static byte[] override(int irq, int gsi, int flags) {
        return le().put((byte) INTERRUPT_SOURCE_OVERRIDE).put((byte) 10).put((byte) 0).put((byte) irq).putInt(gsi)
                .putShort((short) flags).array(10);
    }

    /** A scratch little-endian buffer for one structure. */
    private static Builder le() {
        return new Builder();
    }

    /** A little-endian buffer that gives back the first n bytes written. */
    private static final class Builder {
        private final ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);

        Builder put(byte v) {
            b.put(v);
            return this;
        }

        Builder putShort(short v) {
            b.putShort(v);
            return this;
        }

        Builder putInt(int v) {
            b.putInt(v);
            return this;
        }

        byte[] array(int n) {
            if (b.position() != n) {
                throw new IllegalStateException("MADT structure of " + b.position() + " bytes, expected " + n);
            }
            return java.util.Arrays.copyOf(b.array(), n);
        }
    }
}
