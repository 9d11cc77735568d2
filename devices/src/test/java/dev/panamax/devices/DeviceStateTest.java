package dev.panamax.devices;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.core.state.Snapshottable;
import dev.panamax.core.state.StateException;
import dev.panamax.core.state.StateWriter;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The legacy devices' snapshots: a state worth saving survives, and bad states are refused without a change. */
class DeviceStateTest {
    /** Every prefix, a wrong tag, a future version, trailing bytes: refused, the model unchanged. */
    private static void refusesDamage(Snapshottable model, String name) {
        byte[] good = model.saveState();
        for (int n = 0; n < good.length; n++) {
            byte[] prefix = Arrays.copyOf(good, n);
            var e = assertThrows(StateException.class, () -> model.restoreState(prefix));
            assertTrue(e.getMessage().startsWith(name + " state: "), e.getMessage());
        }
        byte[] tag = good.clone();
        tag[0] ^= 1;
        assertThrows(StateException.class, () -> model.restoreState(tag));
        byte[] future = good.clone();
        future[4] = 2;
        assertTrue(assertThrows(StateException.class, () -> model.restoreState(future)).getMessage().contains("newer"));
        byte[] trailing = Arrays.copyOf(good, good.length + 1);
        assertTrue(assertThrows(StateException.class, () -> model.restoreState(trailing)).getMessage().contains("trailing"));
        assertThrows(StateException.class, () -> model.restoreState(null));
        assertArrayEquals(good, model.saveState(), name + " unchanged");
    }

    @Test
    void uartKeepsRegistersDivisorAndQueuedInput() {
        var a = DeviceStateProperties.uartRig();
        var uart = (Serial16550) a.device();
        uart.write(3, 1, 0x83);             // DLAB, 8 bits
        uart.write(0, 1, 0x01);             // DLL: 115200 baud
        uart.write(1, 1, 0x00);
        uart.write(3, 1, 0x03);
        uart.write(7, 1, 0x5A);             // SCR
        uart.write(2, 1, 0xC7);             // FCR
        uart.write(4, 1, 0x0B);             // MCR: DTR RTS OUT2
        uart.write(1, 1, 0x01);             // IER: RDI
        uart.receive("hello".getBytes(), 5);
        assertEquals(0x04, uart.read(2, 1) & 0x0F); // IIR says data: the receiver opens
        assertEquals('h', uart.read(0, 1));
        assertEquals(List.of("irq true"), a.events());

        var b = DeviceStateProperties.uartRig();
        var copy = (Serial16550) b.device();
        copy.restoreState(uart.saveState());
        assertEquals(List.of(), b.events(), "restore leaves the line to KVM_SET_IRQCHIP");
        for (var u : List.of(uart, copy)) {
            assertEquals(0x5A, u.read(7, 1));
            assertEquals(0x0B, u.read(4, 1));
            assertEquals(0xC4, u.read(2, 1));
            u.write(3, 1, 0x83);
            assertEquals(0x01, u.read(0, 1));
            u.write(3, 1, 0x03);
            assertEquals("ello", new String(new byte[] {(byte) u.read(0, 1), (byte) u.read(0, 1), (byte) u.read(0, 1),
                    (byte) u.read(0, 1)}));
        }
        assertEquals(List.of("irq true", "irq false"), a.events());
        assertEquals(List.of("irq false"), b.events(), "the restored level makes the next transition right");
        refusesDamage(copy, "com1");
    }

    @Test
    void uartRefusesOutOfRangeValues() {
        var uart = (Serial16550) DeviceStateProperties.uartRig().device();
        byte[] before = uart.saveState();
        byte[] tooLong = new StateWriter(Serial16550.STATE_TAG, 1).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0x0C).u8(0)
                .bool(false).bool(false).bool(false).bytes(new byte[Serial16550.RX_LIMIT + 1]).toByteArray();
        assertTrue(assertThrows(StateException.class, () -> uart.restoreState(tooLong)).getMessage().contains("rx queue"));
        byte[] ier = before.clone();
        ier[6] = 0x10;
        assertThrows(StateException.class, () -> uart.restoreState(ier));
        byte[] level = before.clone();
        level[15] = 1; // irq_level high with nothing pending
        assertThrows(StateException.class, () -> uart.restoreState(level));
        byte[] bool = before.clone();
        bool[13] = 2;
        assertThrows(StateException.class, () -> uart.restoreState(bool));
        assertArrayEquals(before, uart.saveState());
        byte[] full = new StateWriter(Serial16550.STATE_TAG, 1).u8(0).u8(0).u8(0).u8(0).u8(0).u8(0x0C).u8(0)
                .bool(false).bool(false).bool(false).bytes(new byte[Serial16550.RX_LIMIT]).toByteArray();
        uart.restoreState(full); // exactly the limit is fine
    }

    @Test
    void i8042KeepsCtrOutputAndPendingCommand() {
        var a = DeviceStateProperties.i8042Rig();
        var kbc = (I8042) a.device();
        kbc.write(4, 1, 0x60);
        kbc.write(0, 1, 0x47);   // CTR: both interrupts
        kbc.write(4, 1, 0xD3);
        kbc.write(0, 1, 0x5A);   // aux loopback: IRQ 12 up
        kbc.write(4, 1, 0xD2);   // pending: keyboard loopback
        var b = DeviceStateProperties.i8042Rig();
        var copy = (I8042) b.device();
        copy.restoreState(kbc.saveState());
        assertEquals(List.of(), b.events());
        for (var k : List.of(kbc, copy)) {
            assertEquals(0x3D, k.read(4, 1)); // OBF, SYS, CMD, unlocked, aux data
            assertEquals(0x5A, k.read(0, 1));
            k.write(0, 1, 0x33);              // the pending D2 takes it
            assertEquals(0x33, k.read(0, 1));
            k.write(4, 1, 0x20);
            assertEquals(0x47, k.read(0, 1));
        }
        assertEquals(b.events(), a.events().subList(a.events().size() - b.events().size(), a.events().size()));
        assertEquals(List.of("irq12 false", "irq1 true", "irq1 false", "irq1 true", "irq1 false"), b.events());
        refusesDamage(copy, "i8042");
        byte[] bad = copy.saveState();
        bad[10] = (byte) 0xAA; // not a command that waits for data
        assertThrows(StateException.class, () -> copy.restoreState(bad));
    }

    @Test
    void cmosKeepsIndexRegBAndRam() {
        var a = DeviceStateProperties.cmosRig();
        var rtc = (CmosRtc) a.device();
        rtc.write(0, 1, 0x0B);
        rtc.write(1, 1, 0x12);   // REG_B: update-ended interrupt enable, 24 h
        rtc.write(0, 1, 0x40);
        rtc.write(1, 1, 0x99);   // RAM
        rtc.write(0, 1, 0x80 | 0x40); // NMI off, index 0x40
        var copy = (CmosRtc) DeviceStateProperties.cmosRig().device();
        copy.restoreState(rtc.saveState());
        assertEquals(0x99, copy.read(1, 1));
        copy.write(0, 1, 0x0B);
        assertEquals(0x12, copy.read(1, 1));
        copy.write(0, 1, 0x00);
        assertEquals(0x56, copy.read(1, 1)); // the time is the clock's, not saved
        refusesDamage(copy, "rtc");
        byte[] bad = copy.saveState();
        bad[7] = 0x04; // REG_B binary, 12-hour
        assertThrows(StateException.class, () -> copy.restoreState(bad));
        byte[] index = copy.saveState();
        index[6] = (byte) 0x80;
        assertThrows(StateException.class, () -> copy.restoreState(index));
    }

    @Test
    void acpiPmKeepsEnableAndControl() {
        var a = DeviceStateProperties.acpiRig();
        var pm = (AcpiPm) a.device();
        pm.write(2, 2, 0x0120);
        pm.write(4, 2, 3 << AcpiPm.SLP_TYP_SHIFT);
        var copy = (AcpiPm) DeviceStateProperties.acpiRig().device();
        assertNotEquals(pm.read(0, 4), copy.read(0, 4));
        copy.restoreState(pm.saveState());
        assertEquals(pm.read(0, 4), copy.read(0, 4));
        assertEquals(pm.read(4, 2), copy.read(4, 2));
        refusesDamage(copy, "acpi-pm");
        byte[] slpEn = new StateWriter(AcpiPm.STATE_TAG, 1).u16(0).u16(0).u16(AcpiPm.SLP_EN | AcpiPm.SCI_EN).toByteArray();
        assertThrows(StateException.class, () -> copy.restoreState(slpEn));
        byte[] noSci = new StateWriter(AcpiPm.STATE_TAG, 1).u16(0).u16(0).u16(0).toByteArray();
        assertThrows(StateException.class, () -> copy.restoreState(noSci));
    }
}
