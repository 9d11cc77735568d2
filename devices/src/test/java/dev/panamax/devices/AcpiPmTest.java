package dev.panamax.devices;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The ACPI PM1 and reset registers, driven as Linux's ACPICA drives them (hwacpi.c, hwsleep.c, hwxface.c). */
class AcpiPmTest {
    private final AtomicInteger powerOffs = new AtomicInteger();
    private final AtomicInteger resets = new AtomicInteger();
    private final AcpiPm pm = new AcpiPm(powerOffs::incrementAndGet, resets::incrementAndGet);

    @Test
    void sciEnReadsOneSoTheMachineIsInAcpiMode() {
        assertEquals(AcpiPm.SCI_EN, pm.read(AcpiPm.PM1_CNT_OFFSET, 2) & AcpiPm.SCI_EN);
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, 0); // a guest cannot leave ACPI mode: there is no SMM to go back to
        assertEquals(AcpiPm.SCI_EN, pm.read(AcpiPm.PM1_CNT_OFFSET, 2));
        assertEquals(AcpiPm.SCI_EN, pm.read(AcpiPm.PM1_CNT_OFFSET, 1));
    }

    @Test
    void statusIsClearAndEnableReadsBack() {
        pm.write(0, 2, 0xFFFF);                 // clear every status bit
        assertEquals(0, pm.read(0, 2));
        pm.write(2, 2, 0x0120);                 // PWRBTN_EN | GBL_EN
        assertEquals(0x0120, pm.read(2, 2));
        assertEquals(0x0120_0000L, pm.read(0, 4)); // the whole event block in one access
        pm.write(3, 1, 0x00);
        assertEquals(0x0020, pm.read(2, 2));
        assertEquals(0, powerOffs.get() + resets.get());
    }

    @Test
    void s5WithSlpEnPowersOffOnce() {
        // acpi_hw_legacy_sleep: SLP_TYP first, then SLP_TYP | SLP_EN in a second write.
        int slpTyp5 = AcpiPm.S5_SLP_TYP << AcpiPm.SLP_TYP_SHIFT;
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, slpTyp5 | AcpiPm.SCI_EN);
        assertEquals(0, powerOffs.get());
        pm.write(AcpiPm.PM1_CNT_OFFSET, 2, slpTyp5 | AcpiPm.SLP_EN | AcpiPm.SCI_EN);
        assertEquals(1, powerOffs.get());
        assertEquals(0, pm.read(AcpiPm.PM1_CNT_OFFSET, 2) & AcpiPm.SLP_EN, "SLP_EN is write-only");
        assertEquals(slpTyp5 | AcpiPm.SCI_EN, pm.read(AcpiPm.PM1_CNT_OFFSET, 2));
    }

    @Test
    void s5WrittenByteByByteAlsoPowersOff() {
        pm.write(AcpiPm.PM1_CNT_OFFSET, 1, 0x01);
        pm.write(AcpiPm.PM1_CNT_OFFSET + 1, 1, ((AcpiPm.S5_SLP_TYP << AcpiPm.SLP_TYP_SHIFT) | AcpiPm.SLP_EN) >>> 8);
        assertEquals(1, powerOffs.get());
    }

    @Test
    void otherSleepStatesAreIgnored() {
        for (int typ = 0; typ < 8; typ++) {
            if (typ != AcpiPm.S5_SLP_TYP) {
                pm.write(AcpiPm.PM1_CNT_OFFSET, 2, (typ << AcpiPm.SLP_TYP_SHIFT) | AcpiPm.SLP_EN);
            }
        }
        assertEquals(0, powerOffs.get());
        assertEquals(0, resets.get());
    }

    @Test
    void resetRegisterResetsOnlyWithResetValue() {
        pm.write(AcpiPm.RESET_OFFSET, 1, 0x06);
        pm.write(AcpiPm.RESET_OFFSET, 1, 0x00);
        assertEquals(0, resets.get());
        pm.write(AcpiPm.RESET_OFFSET, 1, AcpiPm.RESET_VALUE);
        assertEquals(1, resets.get());
        assertEquals(0, pm.read(AcpiPm.RESET_OFFSET, 1));
        assertEquals(0, powerOffs.get());
    }

    @Test
    void gapBytesReadZeroAndIgnoreWrites() {
        pm.write(6, 2, 0xFFFF);
        assertEquals(0, pm.read(6, 2));
        assertEquals(0, powerOffs.get() + resets.get());
    }

    @Test
    void traceNamesTheRegisters() {
        assertEquals("PM1a_STS", pm.describe(0, 2, false, 0));
        assertEquals("PM1a_EN", pm.describe(2, 2, true, 0x100));
        assertEquals("PM1a_CNT SLP_TYP=5 SLP_EN", pm.describe(4, 2, true, 0x3401));
        assertEquals("RESET_REG", pm.describe(8, 1, true, 1));
        assertNull(pm.describe(6, 1, false, 0));
    }
}
