package dev.panamax.vfio;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.panamax.vfio.VfioDeviceMigState.*;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_MIGRATION_P2P;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_MIGRATION_STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The arcs of {@link VfioDeviceMigState}: vfio.h's state machine, as the kernel's {@code vfio_from_fsm_table} and
 * {@code state_flags_table} (drivers/vfio/vfio_main.c) give them; the enum's numbers.
 */
class VfioDeviceMigStateTest {
    static final long STOP_COPY_ONLY = VFIO_MIGRATION_STOP_COPY();
    static final long WITH_P2P = VFIO_MIGRATION_STOP_COPY() | VFIO_MIGRATION_P2P();
    static final long WITH_PRE_COPY = VFIO_MIGRATION_STOP_COPY() | VFIO_MIGRATION_PRE_COPY;
    static final long ALL = WITH_P2P | VFIO_MIGRATION_PRE_COPY;

    static List<VfioDeviceMigState> path(VfioDeviceMigState from, VfioDeviceMigState to, long flags) {
        List<VfioDeviceMigState> steps = new ArrayList<>();
        VfioDeviceMigState now = from;
        while (now != to && steps.size() < 10) {
            now = now.nextStep(to, flags);
            steps.add(now);
            if (now == ERROR) {
                break;
            }
        }
        return steps;
    }

    @Test
    void combinationTransitionsGoThroughStop() {
        assertEquals(List.of(STOP, STOP_COPY), path(RUNNING, STOP_COPY, STOP_COPY_ONLY));
        assertEquals(List.of(STOP, RUNNING), path(STOP_COPY, RUNNING, STOP_COPY_ONLY));
        assertEquals(List.of(STOP, RESUMING), path(RUNNING, RESUMING, STOP_COPY_ONLY));
        assertEquals(List.of(STOP, RUNNING), path(RESUMING, RUNNING, STOP_COPY_ONLY));
        assertEquals(List.of(STOP, RESUMING), path(STOP_COPY, RESUMING, STOP_COPY_ONLY));
        assertEquals(List.of(RUNNING), path(STOP, RUNNING, STOP_COPY_ONLY));
    }

    @Test
    void combinationTransitionsGoThroughTheIntermediateStates() {
        assertEquals(STOP, RUNNING.nextStep(STOP, STOP_COPY_ONLY));
        assertEquals(STOP, RUNNING.nextStep(STOP_COPY, STOP_COPY_ONLY));
        assertEquals(STOP, RUNNING.nextStep(RESUMING, STOP_COPY_ONLY));
        assertEquals(RUNNING, STOP.nextStep(RUNNING, STOP_COPY_ONLY));
        assertEquals(STOP_COPY, STOP.nextStep(STOP_COPY, STOP_COPY_ONLY));
        assertEquals(RESUMING, STOP.nextStep(RESUMING, STOP_COPY_ONLY));
        assertEquals(STOP, STOP_COPY.nextStep(RUNNING, STOP_COPY_ONLY));
        assertEquals(STOP, STOP_COPY.nextStep(RESUMING, STOP_COPY_ONLY));
        assertEquals(STOP, RESUMING.nextStep(RUNNING, STOP_COPY_ONLY));
        assertEquals(STOP, RESUMING.nextStep(STOP_COPY, STOP_COPY_ONLY));
        assertEquals(RUNNING, RUNNING.nextStep(RUNNING, STOP_COPY_ONLY));
    }

    @Test
    void withP2pRunningAndStopPassThroughRunningP2p() {
        assertEquals(List.of(RUNNING_P2P, STOP, STOP_COPY), path(RUNNING, STOP_COPY, WITH_P2P));
        assertEquals(List.of(STOP, RUNNING_P2P, RUNNING), path(STOP_COPY, RUNNING, WITH_P2P));
        assertEquals(List.of(RUNNING_P2P, STOP), path(RUNNING, STOP, WITH_P2P));
    }

    @Test
    void noPathToErrorFromErrorOrToAnUnsupportedState() {
        assertEquals(ERROR, RUNNING.nextStep(ERROR, WITH_P2P));
        assertEquals(ERROR, ERROR.nextStep(RUNNING, WITH_P2P));
        assertEquals(ERROR, RUNNING.nextStep(RUNNING_P2P, STOP_COPY_ONLY));
        assertEquals(ERROR, RUNNING.nextStep(STOP_COPY, 0));
        assertEquals(STOP, STOP.nextStep(STOP, 0));
    }

    @Test
    void refusedArcs() {
        for (VfioDeviceMigState s : values()) {
            assertEquals(ERROR, s.nextStep(ERROR, STOP_COPY_ONLY), s + " -> ERROR");
            if (s != ERROR) {
                assertEquals(ERROR, ERROR.nextStep(s, STOP_COPY_ONLY), "ERROR -> " + s);
            }
        }
        assertEquals(ERROR, RUNNING.nextStep(RUNNING_P2P, STOP_COPY_ONLY), "no P2P offered");
        assertEquals(ERROR, RUNNING.nextStep(PRE_COPY, STOP_COPY_ONLY), "no PRE_COPY offered");
        assertEquals(ERROR, RUNNING.nextStep(STOP, 0), "no STOP_COPY: no STOP either");
        long pre = STOP_COPY_ONLY | VFIO_MIGRATION_PRE_COPY;
        assertEquals(PRE_COPY, RUNNING.nextStep(PRE_COPY, pre));
        assertEquals(STOP_COPY, PRE_COPY.nextStep(STOP_COPY, pre));
        assertEquals(RUNNING, PRE_COPY.nextStep(STOP, pre));
        assertEquals(ERROR, STOP_COPY.nextStep(PRE_COPY, pre), "PRE_COPY cannot be re-entered from STOP_COPY");
        long p2p = STOP_COPY_ONLY | VFIO_MIGRATION_P2P();
        assertEquals(RUNNING_P2P, RUNNING.nextStep(STOP, p2p));
        assertEquals(STOP, RUNNING_P2P.nextStep(STOP_COPY, p2p));
    }

    @Test
    void everyPairOfSupportedStatesIsReachedInAtMostThreeSteps() {
        for (long flags : new long[] {STOP_COPY_ONLY, WITH_P2P}) {
            for (VfioDeviceMigState from : values()) {
                for (VfioDeviceMigState to : values()) {
                    if (from == ERROR || to == ERROR || !from.supportedBy(flags) || !to.supportedBy(flags)) {
                        continue;
                    }
                    List<VfioDeviceMigState> p = path(from, to, flags);
                    assertTrue(p.size() <= 3 && (p.isEmpty() ? from == to : p.getLast() == to), from + "->" + to + ": " + p);
                    assertTrue(p.stream().allMatch(s -> s.supportedBy(flags)), p.toString());
                    // STOP_COPY and RESUMING (the states that open a data fd) are only ever the destination.
                    assertTrue(p.subList(0, Math.max(0, p.size() - 1)).stream().noneMatch(s -> s == STOP_COPY || s == RESUMING), p.toString());
                }
            }
        }
    }

    /** With PRE_COPY offered: every pair is reached through supported states, except PRE_COPY* from STOP_COPY. */
    @Test
    void withPreCopyEveryPairButReenteringPreCopyIsReached() {
        for (long flags : new long[] {WITH_PRE_COPY, ALL}) {
            for (VfioDeviceMigState from : values()) {
                for (VfioDeviceMigState to : values()) {
                    if (from == ERROR || to == ERROR || !from.supportedBy(flags) || !to.supportedBy(flags)) {
                        continue;
                    }
                    List<VfioDeviceMigState> p = path(from, to, flags);
                    String what = Long.toHexString(flags) + ": " + from + "->" + to + ": " + p;
                    if (from == STOP_COPY && (to == PRE_COPY || to == PRE_COPY_P2P)) {
                        assertEquals(List.of(ERROR), p, what);
                        continue;
                    }
                    assertTrue(p.size() <= 4 && (p.isEmpty() ? from == to : p.getLast() == to), what);
                    assertTrue(p.stream().allMatch(s -> s.supportedBy(flags)), what);
                    assertTrue(p.subList(0, Math.max(0, p.size() - 1)).stream().noneMatch(s -> s == STOP_COPY || s == RESUMING), what);
                }
            }
        }
        assertEquals(List.of(PRE_COPY_P2P, STOP_COPY), path(PRE_COPY, STOP_COPY, ALL));
        assertEquals(List.of(STOP_COPY), path(PRE_COPY, STOP_COPY, WITH_PRE_COPY));
    }

    /** The P2P and PRE_COPY states need STOP_COPY besides their own flag (the kernel's state_flags_table). */
    @Test
    void supportedStatesFollowTheFlags() {
        assertTrue(ERROR.supportedBy(0));
        assertTrue(RUNNING.supportedBy(0));
        assertFalse(STOP.supportedBy(0));
        assertTrue(RESUMING.supportedBy(STOP_COPY_ONLY));
        assertFalse(RUNNING_P2P.supportedBy(STOP_COPY_ONLY));
        assertTrue(RUNNING_P2P.supportedBy(WITH_P2P));
        assertFalse(RUNNING_P2P.supportedBy(VFIO_MIGRATION_P2P()), "P2P without STOP_COPY");
        assertFalse(PRE_COPY.supportedBy(VFIO_MIGRATION_PRE_COPY), "PRE_COPY without STOP_COPY");
        assertTrue(PRE_COPY.supportedBy(WITH_PRE_COPY));
        assertFalse(PRE_COPY_P2P.supportedBy(WITH_PRE_COPY));
        assertFalse(PRE_COPY_P2P.supportedBy(WITH_P2P));
        assertTrue(PRE_COPY_P2P.supportedBy(ALL));
    }

    @Test
    void codesAreTheEnumsValues() {
        assertEquals(0, ERROR.code());
        assertEquals(3, STOP_COPY.code());
        assertEquals(RUNNING_P2P, VfioDeviceMigState.of(5));
        assertThrows(IllegalArgumentException.class, () -> VfioDeviceMigState.of(-1));
    }

    @Test
    void stateNumbersAreVfioHs() {
        assertEquals(STOP_COPY, VfioDeviceMigState.of(3));
        assertEquals(PRE_COPY, VfioDeviceMigState.of(6));
        assertEquals(PRE_COPY_P2P, VfioDeviceMigState.of(7));
        assertEquals(4, VFIO_MIGRATION_PRE_COPY);
        var e = assertThrows(IllegalArgumentException.class, () -> VfioDeviceMigState.of(8));
        assertEquals("device_state 8 is no enum vfio_device_mig_state value", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> VfioDeviceMigState.of(-1));
        assertEquals("device_state 4294967295 is no enum vfio_device_mig_state value", e.getMessage(), "read unsigned");
    }
}
