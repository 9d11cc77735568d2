package dev.panamax.kvm.bindings;

import dev.panamax.core.bindings.BindingsCheck;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checks every binding against gcc's reading of {@code /usr/include/linux/kvm.h}: the Java side is walked
 * (each struct class's {@code layout()}, its {@code x$offset()} methods and accessors, each constant and
 * ioctl of {@link kvm_h}), a C program printing the same quantities with {@code sizeof}/{@code offsetof}
 * is written from that walk, compiled, run, and both sides compared (vmm-core's {@link BindingsCheck}). Needs gcc and the kernel headers
 * (linux-libc-dev), not /dev/kvm.
 */
class KvmLayoutTest {

    static final List<Class<?>> STRUCTS = List.of(
            kvm_run.class, kvm_regs.class, kvm_sregs.class, kvm_segment.class, kvm_dtable.class, kvm_fpu.class,
            kvm_cpuid2.class, kvm_cpuid_entry2.class, kvm_msrs.class, kvm_msr_entry.class, kvm_msr_list.class,
            kvm_userspace_memory_region.class, kvm_pit_config.class, kvm_irq_level.class, kvm_lapic_state.class,
            kvm_signal_mask.class, kvm_mp_state.class, kvm_irqfd.class, kvm_irq_routing.class,
            kvm_irq_routing_entry.class, kvm_irq_routing_msi.class, kvm_irq_routing_irqchip.class, kvm_ioeventfd.class,
            // The VM's state (issue 17).
            kvm_xsave.class, kvm_xcr.class, kvm_xcrs.class, kvm_vcpu_events.class, kvm_debugregs.class,
            kvm_pic_state.class, kvm_ioapic_state.class, kvm_irqchip.class, kvm_pit_channel_state.class,
            kvm_pit_state2.class, kvm_clock_data.class, kvm_dirty_log.class);

    static BindingsCheck check;

    @BeforeAll
    static void askGcc() throws Exception {
        check = new BindingsCheck("linux/kvm.h", kvm_h.class, "KVM[A-Z0-9_]*", STRUCTS);
    }

    @Test
    void everyStructSizeOffsetAndMacroMatchesGcc() {
        List<String> wrong = check.disagreements();
        assertTrue(wrong.isEmpty(), "bindings disagree with <linux/kvm.h>:\n" + String.join("\n", wrong));
        // The walk reached the things the runtime depends on.
        assertEquals(2352, check.c.get("sizeof:kvm_run"));
        assertTrue(check.java.containsKey("method:kvm_run:io_data_offset"));
        assertTrue(check.java.containsKey("method:kvm_run:mmio_is_write"));
        assertTrue(check.java.containsKey("offsetof:kvm_sregs:cs.base"));
        assertTrue(check.java.containsKey("offsetof:kvm_irq_routing_entry:u.msi.devid"));
        assertTrue(check.java.containsKey("macro:KVM_RUN"));
        assertTrue(check.java.containsKey("macro:KVM_SET_GSI_ROUTING"));
    }

    /** The state structs (issue 17): every one walked, with the sizes the kernel ABI fixes. */
    @Test
    void stateStructsAreWalkedWithTheirAbiSizes() {
        assertEquals(4096, check.c.get("sizeof:kvm_xsave"));
        assertEquals(392, check.c.get("sizeof:kvm_xcrs"));
        assertEquals(64, check.c.get("sizeof:kvm_vcpu_events"));
        assertEquals(128, check.c.get("sizeof:kvm_debugregs"));
        assertEquals(520, check.c.get("sizeof:kvm_irqchip"));
        assertEquals(112, check.c.get("sizeof:kvm_pit_state2"));
        assertEquals(48, check.c.get("sizeof:kvm_clock_data"));
        assertEquals(16, check.c.get("sizeof:kvm_dirty_log"));
        for (String key : List.of("offsetof:kvm_xsave:extra", "offsetof:kvm_xcrs:xcrs", "offsetof:kvm_xcrs:padding",
                "offsetof:kvm_vcpu_events:exception.error_code", "offsetof:kvm_vcpu_events:smi.latched_init",
                "offsetof:kvm_vcpu_events:triple_fault.pending", "offsetof:kvm_vcpu_events:exception_payload",
                "offsetof:kvm_debugregs:dr7", "offsetof:kvm_irqchip:chip.pic.elcr_mask",
                "offsetof:kvm_irqchip:chip.ioapic.redirtbl", "offsetof:kvm_pit_state2:flags",
                "offsetof:kvm_pit_channel_state:count_load_time", "offsetof:kvm_clock_data:host_tsc",
                "offsetof:kvm_dirty_log:dirty_bitmap", "macro:KVM_GET_XSAVE2", "macro:KVM_SET_IRQCHIP",
                "macro:KVM_GET_MSRS", "macro:KVM_CAP_XSAVE2", "macro:KVM_VCPUEVENT_VALID_SIPI_VECTOR")) {
            assertTrue(check.java.containsKey(key), key + " not walked");
        }
    }

    /**
     * Each scalar setter writes exactly the bytes C gives its field ({@link BindingsCheck#checkScalarAccessors}).
     */
    @Test
    void everyScalarAccessorTouchesExactlyItsField() throws Exception {
        int checked = check.checkScalarAccessors();
        assertTrue(checked > 100, "only " + checked + " accessors checked");
    }

    @Test
    void ioctlNumbersAreTheKnownValues() {
        // A few spelled out, from strace of a running VMM, so the encoding itself is pinned as well.
        assertEquals(0xae80L, kvm_h.KVM_RUN());
        assertEquals(0xae01L, kvm_h.KVM_CREATE_VM());
        assertEquals(0x4020ae46L, kvm_h.KVM_SET_USER_MEMORY_REGION());
        assertEquals(0x8090ae81L, kvm_h.KVM_GET_REGS());
        assertEquals(0xc008ae05L, kvm_h.KVM_GET_SUPPORTED_CPUID());
        // The state ioctls, encoded by hand from <asm-generic/ioctl.h> (dir << 30 | size << 16 | 0xae << 8 | nr).
        assertEquals(0xc008ae88L, kvm_h.KVM_GET_MSRS());
        assertEquals(0x9000aea4L, kvm_h.KVM_GET_XSAVE());
        assertEquals(0x9000aecfL, kvm_h.KVM_GET_XSAVE2());
        assertEquals(0x5000aea5L, kvm_h.KVM_SET_XSAVE());
        assertEquals(0xc208ae62L, kvm_h.KVM_GET_IRQCHIP());
        assertEquals(0x8208ae63L, kvm_h.KVM_SET_IRQCHIP()); // _IOR in the header, a historical slip kept for ABI
        assertEquals(0x8070ae9fL, kvm_h.KVM_GET_PIT2());
        assertEquals(0x8040ae9fL, kvm_h.KVM_GET_VCPU_EVENTS());
        assertEquals(0x4030ae7bL, kvm_h.KVM_SET_CLOCK());
        assertEquals(0x4010ae42L, kvm_h.KVM_GET_DIRTY_LOG());
    }

    @Test
    void flexibleArrayAccessorsStepByElement() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cpuid = arena.allocate(kvm_cpuid2.sizeof() + 3 * kvm_cpuid_entry2.sizeof(), 8);
            kvm_cpuid_entry2.function(kvm_cpuid2.entries(cpuid, 2), 0xb);
            assertEquals(0xb, cpuid.get(ValueLayout.JAVA_INT, 8 + 2 * 40));
            MemorySegment list = arena.allocate(kvm_msr_list.sizeof() + 4 * 4, 8);
            kvm_msr_list.indices(list, 3, 0x174);
            assertEquals(0x174, list.get(ValueLayout.JAVA_INT, 4 + 3 * 4));
        }
    }
}
