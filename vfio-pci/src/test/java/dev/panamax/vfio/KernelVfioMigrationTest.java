package dev.panamax.vfio;

import dev.panamax.core.sys.Libc;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static dev.panamax.vfio.VfioMigState.*;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_MIGRATION_P2P;
import static dev.panamax.vfio.bindings.vfio_h.VFIO_MIGRATION_STOP_COPY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The arcs of {@link VfioMigState} (vfio.h's state machine, the kernel's {@code vfio_from_fsm_table}) and
 * {@link KernelVfioMigration}'s data-fd streaming over a memfd. The ioctls themselves need a device whose driver
 * offers migration (no /dev/vfio here); the probe's "not supported" path is taken on a memfd (ENOTTY).
 */
class KernelVfioMigrationTest {
    static final long STOP_COPY_ONLY = VFIO_MIGRATION_STOP_COPY();
    static final long WITH_P2P = VFIO_MIGRATION_STOP_COPY() | VFIO_MIGRATION_P2P();

    static List<VfioMigState> path(VfioMigState from, VfioMigState to, long flags) {
        List<VfioMigState> steps = new ArrayList<>();
        VfioMigState now = from;
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
    void everyPairOfSupportedStatesIsReachedInAtMostThreeSteps() {
        for (long flags : new long[] {STOP_COPY_ONLY, WITH_P2P}) {
            for (VfioMigState from : values()) {
                for (VfioMigState to : values()) {
                    if (from == ERROR || to == ERROR || !from.supportedBy(flags) || !to.supportedBy(flags)) {
                        continue;
                    }
                    List<VfioMigState> p = path(from, to, flags);
                    assertTrue(p.size() <= 3 && (p.isEmpty() ? from == to : p.getLast() == to), from + "->" + to + ": " + p);
                    assertTrue(p.stream().allMatch(s -> s.supportedBy(flags)), p.toString());
                    // STOP_COPY and RESUMING (the states that open a data fd) are only ever the destination.
                    assertTrue(p.subList(0, Math.max(0, p.size() - 1)).stream().noneMatch(s -> s == STOP_COPY || s == RESUMING), p.toString());
                }
            }
        }
    }

    @Test
    void codesAreTheEnumsValues() {
        assertEquals(0, ERROR.code());
        assertEquals(3, STOP_COPY.code());
        assertEquals(RUNNING_P2P, VfioMigState.of(5));
        assertThrows(IllegalArgumentException.class, () -> VfioMigState.of(-1));
    }

    @Test
    void probeOfAFileWithoutTheIoctlIsNoMigration() {
        int fd = Libc.memfdCreate("not-a-vfio-device", Libc.MFD_CLOEXEC);
        try {
            assertNull(KernelVfioMigration.probe("memfd", fd));
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void dataStreamsRoundTripInChunksAndReadIsBounded() {
        byte[] data = new byte[KernelVfioMigration.CHUNK * 2 + 12345];
        new Random(17).nextBytes(data);
        int fd = Libc.memfdCreate("mig-data", Libc.MFD_CLOEXEC);
        try {
            KernelVfioMigration.writeStream(fd, data, "test");
            assertEquals(0, Libc.lseekRaw(fd, 0, 0));
            assertArrayEquals(data, KernelVfioMigration.readStream(fd, data.length, "test"));
            assertEquals(0, Libc.lseekRaw(fd, 0, 0));
            var e = assertThrows(IllegalStateException.class, () -> KernelVfioMigration.readStream(fd, data.length - 1, "test"));
            assertTrue(e.getMessage().contains("more than " + (data.length - 1)), e.getMessage());
            KernelVfioMigration.writeStream(fd, new byte[0], "empty");
        } finally {
            Libc.close(fd);
        }
    }
}
