package dev.panamax.vmm;

import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class StartTimeTest {
    @Test
    void millisecondsFromProcessStartToFirstRun() {
        Instant start = Instant.parse("2026-01-01T00:00:00Z");
        assertEquals("process start to first KVM_RUN: 412 ms",
                StartTime.firstKvmRunLine(Optional.of(start), Optional.of(start.plusNanos(412_700_000))));
    }

    @Test
    void saysWhatIsUnknown() {
        assertEquals("process start to first KVM_RUN: no vCPU ran",
                StartTime.firstKvmRunLine(Optional.of(Instant.EPOCH), Optional.empty()));
        assertEquals("process start to first KVM_RUN: unknown (no process start time)",
                StartTime.firstKvmRunLine(Optional.empty(), Optional.of(Instant.EPOCH)));
    }

    @Test
    void thisProcessStartedBeforeNow() {
        // The source of the process start the line uses: present on Linux, and in the past.
        Optional<Instant> start = ProcessHandle.current().info().startInstant();
        assertTrue(start.isPresent());
        String line = StartTime.firstKvmRunLine(start, Optional.of(Instant.now()));
        long ms = Long.parseLong(line.replaceAll("[^0-9]", ""));
        assertTrue(ms >= 0 && ms < 3_600_000, line);
    }
}
