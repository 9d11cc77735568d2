package dev.panamax.kvm;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_irqchip;
import dev.panamax.kvm.bindings.kvm_vcpu_events;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link VcpuState} and {@link VmState} without KVM: sizes checked, arrays copied, Jackson round trip. */
class StateRecordsTest {

    static byte[] filled(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 7 + seed);
        }
        return b;
    }

    static VcpuState vcpu(int xsaveBytes) {
        return new VcpuState(1, filled(144, 1), filled(312, 2), filled(xsaveBytes, 3), filled(392, 4), filled(1024, 5),
                filled(64, 6), filled(128, 7), kvm_h.KVM_MP_STATE_HALTED(),
                List.of(new VcpuState.MsrValue(0x10, 123456789L), new VcpuState.MsrValue(0x4b564d01, 0xabc001L)));
    }

    static byte[] irqchip(int chipId) {
        byte[] b = filled((int) kvm_irqchip.sizeof(), chipId);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(0, chipId);
        return b;
    }

    static VmState vm() {
        return new VmState(irqchip(0), irqchip(1), irqchip(2), filled(112, 9), 5_000_000_000L);
    }

    /** Builds a VcpuState with one piece replaced. */
    static VcpuState with(String piece, byte[] b) {
        VcpuState s = vcpu(4096);
        return new VcpuState(s.id(), piece.equals("regs") ? b : s.regs(), piece.equals("sregs") ? b : s.sregs(),
                piece.equals("xsave") ? b : s.xsave(), piece.equals("xcrs") ? b : s.xcrs(),
                piece.equals("lapic") ? b : s.lapic(), piece.equals("events") ? b : s.events(),
                piece.equals("debugregs") ? b : s.debugregs(), s.mpState(), s.msrs());
    }

    @Test
    void vcpuStateRefusesEveryWrongSizeNamingThePiece() {
        for (String piece : List.of("regs", "sregs", "xcrs", "lapic", "events", "debugregs")) {
            int good = switch (piece) {
                case "regs" -> 144;
                case "sregs" -> 312;
                case "xcrs" -> 392;
                case "lapic" -> 1024;
                case "events" -> 64;
                default -> 128;
            };
            for (int size : new int[] {0, good - 1, good + 1}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> with(piece, new byte[size]),
                        piece + " of " + size + " bytes");
                assertTrue(e.getMessage().contains(piece + " is " + size + " bytes"), e.getMessage());
            }
            assertThrows(NullPointerException.class, () -> with(piece, null));
        }
        for (int size : new int[] {0, 4092, 4098, 8190}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> with("xsave", new byte[size]));
            assertTrue(e.getMessage().contains("xsave is " + size + " bytes"), e.getMessage());
        }
        // KVM_GET_XSAVE2 with dynamic features (AMX) gives more than 4096 bytes: accepted.
        assertEquals(11008, vcpu(11008).xsave().length);
        assertThrows(IllegalArgumentException.class, () -> new VcpuState(-1, new byte[144], new byte[312], new byte[4096],
                new byte[392], new byte[1024], new byte[64], new byte[128], 0, List.of()));
        assertThrows(NullPointerException.class, () -> new VcpuState(0, new byte[144], new byte[312], new byte[4096],
                new byte[392], new byte[1024], new byte[64], new byte[128], 0, null));
    }

    @Test
    void vmStateRefusesWrongSizesAndChipIds() {
        VmState s = vm();
        assertThrows(IllegalArgumentException.class, () -> new VmState(new byte[519], s.picSlave(), s.ioapic(), s.pit2(), 0));
        assertThrows(IllegalArgumentException.class, () -> new VmState(s.picMaster(), new byte[521], s.ioapic(), s.pit2(), 0));
        assertThrows(IllegalArgumentException.class, () -> new VmState(s.picMaster(), s.picSlave(), new byte[0], s.pit2(), 0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new VmState(s.picMaster(), s.picSlave(), s.ioapic(), new byte[111], 0));
        assertTrue(e.getMessage().contains("pit2 is 111 bytes"), e.getMessage());
        // The irqchips in the wrong places: each names its chip_id.
        e = assertThrows(IllegalArgumentException.class, () -> new VmState(s.picSlave(), s.picMaster(), s.ioapic(), s.pit2(), 0));
        assertTrue(e.getMessage().contains("picMaster has chip_id 1, expected 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new VmState(s.picMaster(), s.picSlave(), irqchip(1), s.pit2(), 0));
        assertTrue(e.getMessage().contains("ioapic has chip_id 1, expected 2"), e.getMessage());
        assertThrows(NullPointerException.class, () -> new VmState(s.picMaster(), s.picSlave(), s.ioapic(), null, 0));
    }

    @Test
    void arraysAreCopiedInAndOut() {
        byte[] regs = filled(144, 1);
        VcpuState s = new VcpuState(0, regs, new byte[312], new byte[4096], new byte[392], new byte[1024], new byte[64],
                new byte[128], 0, List.of());
        regs[0] = 99;
        assertNotEquals(99, s.regs()[0]);
        s.regs()[1] = 99;
        assertNotEquals(99, s.regs()[1]);
        VmState v = vm();
        v.pit2()[0] = 42;
        assertArrayEquals(filled(112, 9), v.pit2());
        for (Function<VcpuState, byte[]> piece : List.<Function<VcpuState, byte[]>>of(VcpuState::sregs, VcpuState::xsave,
                VcpuState::xcrs, VcpuState::lapic, VcpuState::events, VcpuState::debugregs)) {
            byte[] a = piece.apply(s);
            Arrays.fill(a, (byte) 5);
            assertNotEquals(5, piece.apply(s)[0]);
        }
    }

    @Test
    void equalityIsByContent() {
        assertEquals(vcpu(4096), vcpu(4096));
        assertEquals(vcpu(4096).hashCode(), vcpu(4096).hashCode());
        assertNotEquals(vcpu(4096), with("lapic", filled(1024, 77)));
        assertEquals(vm(), vm());
        assertEquals(vm().hashCode(), vm().hashCode());
        assertTrue(vcpu(4096).toString().contains("2 MSRs"));
    }

    @Test
    void jacksonRoundTripsBothRecords() throws Exception {
        ObjectMapper json = new ObjectMapper();
        VcpuState s = vcpu(4096);
        String text = json.writeValueAsString(s);
        assertTrue(text.contains("\"msrs\":[{\"index\":16,\"value\":123456789}"), text.substring(0, 200));
        assertEquals(s, json.readValue(text, VcpuState.class));
        VmState v = vm();
        assertEquals(v, json.readValue(json.writeValueAsString(v), VmState.class));
        // A damaged file is refused by the same checks.
        String shortRegs = text.replaceFirst("\"regs\":\"[^\"]*\"", "\"regs\":\"AAAA\"");
        Exception e = assertThrows(Exception.class, () -> json.readValue(shortRegs, VcpuState.class));
        assertTrue(String.valueOf(e.getMessage()).contains("regs is 3 bytes"), e.getMessage());
    }

    @Test
    void restoredEventsGetTheNmiPendingAndSipiValidFlags() {
        byte[] events = new byte[64];
        int at = (int) kvm_vcpu_events.flags$offset();
        ByteBuffer.wrap(events).order(ByteOrder.LITTLE_ENDIAN).putInt(at, kvm_h.KVM_VCPUEVENT_VALID_SHADOW());
        byte[] patched = X86VcpuState.withValidFlags(events);
        assertEquals(kvm_h.KVM_VCPUEVENT_VALID_SHADOW() | kvm_h.KVM_VCPUEVENT_VALID_NMI_PENDING()
                | kvm_h.KVM_VCPUEVENT_VALID_SIPI_VECTOR(), ByteBuffer.wrap(patched).order(ByteOrder.LITTLE_ENDIAN).getInt(at));
        assertEquals(kvm_h.KVM_VCPUEVENT_VALID_SHADOW(), ByteBuffer.wrap(events).order(ByteOrder.LITTLE_ENDIAN).getInt(at),
                "the saved struct is not changed");
        byte[] rest = patched.clone();
        ByteBuffer.wrap(rest).order(ByteOrder.LITTLE_ENDIAN).putInt(at, kvm_h.KVM_VCPUEVENT_VALID_SHADOW());
        assertArrayEquals(events, rest, "only the flags change");
    }

    @Test
    void theClockMsrsAreAlwaysAskedFor() {
        assertEquals(List.of(0x10, 0x4b564d00, 0x4b564d01), X86VcpuState.REQUIRED_MSRS);
        assertTrue(X86VcpuState.MSRS_PER_IOCTL < 256);
    }
}
