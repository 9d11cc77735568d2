package dev.panamax.tests.bench;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The benchmark's arithmetic and parsing (no timing, no KVM): what {@code scripts/bench} prints must be right. */
class BenchTest {

    @Test
    void medianOfOddAndEvenCounts() {
        assertEquals(2.0, Bench.median(List.of(3.0, 1.0, 2.0)));
        assertEquals(2.5, Bench.median(List.of(4.0, 1.0, 3.0, 2.0)));
        assertEquals(7.0, Bench.median(List.of(7.0)));
    }

    @Test
    void parsesRunnerLinesIntoRatios() {
        String out = String.join("\n",
                "BENCH panamax init_ns=2000000000",
                "  panamax| BENCH not-a-result init_ns=1",   // a VMM's own line, prefixed: ignored
                "BENCH q35 init_ns=4000000000",
                "BENCH panamax init_ns=3000000000",
                "BENCH q35 init_ns=5000000000",
                "BENCH exits-java rep=0 port_ns=9999.0 mmio_ns=9999.0", // warm-up rep: dropped
                "BENCH exits-java rep=1 port_ns=1200.0 mmio_ns=1500.0",
                "BENCH exits-c rep=1 port_ns=1000.0 mmio_ns=1000.0",
                "BENCH panamax mem comm=java VmRSS=300000 RssAnon=51200 RssFile=20480 RssShmem=102400 ",
                "BENCH q35 mem comm=qemu-system-x86 VmRSS=200000 RssAnon=10240 RssFile=10240 RssShmem=102400 ",
                "");
        List<Bench.Row> rows = Bench.parse(out, "nested");
        Bench.Row init = rows.stream().filter(r -> r.what().startsWith("boot to guest init, ms, vs QEMU q35")).findFirst().orElseThrow();
        assertEquals(List.of(2000.0, 3000.0), init.panamax());
        assertEquals(List.of(4000.0, 5000.0), init.other());
        Bench.Row port = rows.stream().filter(r -> r.what().startsWith("port I/O exit")).findFirst().orElseThrow();
        assertEquals(List.of(1200.0), port.panamax());
        Bench.Row mem = rows.stream().filter(r -> r.what().startsWith("VMM RSS beyond guest RAM (anon+file), MiB, vs QEMU q35")).findFirst().orElseThrow();
        assertEquals(List.of(70.0), mem.panamax());
        assertEquals(List.of(20.0), mem.other());
        Bench.Row microvm = rows.stream().filter(r -> r.what().startsWith("boot to guest init, ms, vs QEMU microvm")).findFirst().orElseThrow();
        assertEquals(null, microvm.other(), "nothing measured for microvm");
        assertTrue(rows.stream().noneMatch(r -> r.what().startsWith("boot to VMM exit")), "no exit times at all: no row");

        String table = Bench.table(rows);
        assertTrue(table.contains("| boot to guest init, ms, vs QEMU q35 (nested) | 2500 (2000–3000) | 4500 (4000–5000) | 0.56x | 2 / 2 |"), table);
        assertTrue(table.contains("| port I/O exit round trip, ns, vs C (nested) | 1200 (1200–1200) | 1000 (1000–1000) | 1.20x | 1 / 1 |"), table);
        assertTrue(table.contains("| boot to guest init, ms, vs QEMU microvm (nested) | 2500 (2000–3000) | — | — | 2 |"), table);
        assertTrue(table.contains("| 70.0 (70.0–70.0) | 20.0 (20.0–20.0) | 3.50x |"), table);
    }

    @Test
    void firstKvmRunFromTheStatsLineIsComparedWithTheJvmFloor() {
        String out = String.join("\n",
                "BENCH panamax firstrun_ns=3000000000",        // what boot() prints for "... first KVM_RUN: 3000 ms"
                "BENCH jvm-floor exit_ns=2000000000",
                "");
        Bench.Row r = Bench.parse(out, "nested").stream().filter(x -> x.what().startsWith("process start to first KVM_RUN"))
                .findFirst().orElseThrow();
        assertEquals(List.of(3000.0), r.panamax());
        assertEquals(List.of(2000.0), r.other());
        assertTrue(Bench.table(List.of(r)).contains("| 1.50x |"), Bench.table(List.of(r)));
    }

    @Test
    void passthroughThroughputIsBytesOverTheMarkersTime() {
        String out = String.join("\n",
                "BENCH panamax-pt pt_ns=2000000000 bytes=268435456",   // 256 MiB in 2 s
                "  panamax-pt| BENCH-PT-END bytes=268435456",          // the guest's own line, echoed: ignored
                "BENCH q35-pt pt_ns=4000000000 bytes=268435456\r",   // QEMU's serial line ends in CR
                "BENCH panamax-pt pt_ns=1000000000 bytes=268435456",
                "");
        Bench.Row pt = Bench.parse(out, "nested").stream().filter(r -> r.what().startsWith("NVMe sequential read"))
                .findFirst().orElseThrow();
        assertEquals(List.of(128.0, 256.0), pt.panamax());
        assertEquals(List.of(64.0), pt.other());
        assertTrue(Bench.table(List.of(pt)).contains("| 192.0 (128.0–256.0) | 64.0 (64.0–64.0) | 3.00x | 2 / 1 |"),
                Bench.table(List.of(pt)));
    }

    @Test
    void vfioUserBlkThroughputIsBytesOverTheMarkersTime() {
        String out = String.join("\n",
                "BENCH panamax-blk pt_ns=4000000000 bytes=536870912",   // 512 MiB in 4 s
                "  panamax-blk| BENCH-PT-END bytes=536870912",          // the guest's own line, echoed: ignored
                "BENCH q35-blk pt_ns=2000000000 bytes=536870912\r",     // QEMU's serial line ends in CR
                "BENCH q35-blk pt_ns=1000000000 bytes=536870912",
                "BENCH panamax-pt pt_ns=1000000000 bytes=1048576",      // the passthrough piece's: another row
                "");
        List<Bench.Row> rows = Bench.parse(out, "nested");
        Bench.Row blk = rows.stream().filter(r -> r.what().startsWith("virtio-blk over vfio-user sequential read"))
                .findFirst().orElseThrow();
        assertEquals(List.of(128.0), blk.panamax());
        assertEquals(List.of(256.0, 512.0), blk.other());
        assertTrue(Bench.table(List.of(blk)).contains(
                "| virtio-blk over vfio-user sequential read in the guest, MiB/s, vs QEMU q35 virtio-blk (same file) (nested)"
                        + " | 128.0 (128.0–128.0) | 384.0 (256.0–512.0) | 0.33x | 1 / 2 |"), Bench.table(List.of(blk)));
        assertEquals(null, rows.stream().filter(r -> r.what().contains("with ioeventfds")).findFirst().orElseThrow().panamax(),
                "no iofd runs: the row has no Panamax figure");
        List<Bench.Row> withIofd = Bench.parse(out + "\nBENCH panamax-blk-iofd pt_ns=2000000000 bytes=536870912\n", "nested");
        Bench.Row iofd = withIofd.stream().filter(r -> r.what().contains("with ioeventfds")).findFirst().orElseThrow();
        assertEquals(List.of(256.0), iofd.panamax());
        assertEquals(List.of(128.0), iofd.other());
        Bench.Row pt = rows.stream().filter(r -> r.what().startsWith("NVMe sequential read")).findFirst().orElseThrow();
        assertEquals(List.of(1.0), pt.panamax());
        assertEquals(null, pt.other());
    }

    @Test
    void testVerdictTimesAreMillisecondsPerLabel() {
        String out = String.join("\n",
                "BENCH test-panamax verdict_ns=3000000000",
                "BENCH test-microvm verdict_ns=2000000000\r",
                "BENCH-FAILED test-panamax status=1 (want 0)",           // a run with the wrong verdict: no figure
                "  test-panamax| BENCH test-panamax verdict_ns=1",       // echoed output: ignored
                "BENCH test-panamax verdict_ns=5000000000",
                "");
        List<Bench.Row> rows = Bench.parse(out, "direct");
        Bench.Row t = rows.stream().filter(r -> r.what().startsWith("panamax test of a one-line script")).findFirst().orElseThrow();
        assertEquals(List.of(3000.0, 5000.0), t.panamax());
        assertEquals(List.of(2000.0), t.other());
        assertTrue(Bench.table(List.of(t)).contains(
                "| panamax test of a one-line script, start to verdict, ms, vs QEMU microvm (same script) (direct)"
                        + " | 4000 (3000–5000) | 2000 (2000–2000) | 2.00x | 2 / 1 |"), Bench.table(List.of(t)));
        assertTrue(rows.stream().noneMatch(r -> r.what().startsWith("virtio-blk over vfio-user")), "not measured: no row");
    }

    @Test
    void newPiecesAreKnownToOnly() {
        assertTrue(Bench.PIECES.contains("vfio-user-blk"));
        assertTrue(Bench.PIECES.contains("test"));
    }

    @Test
    void exitBenchGuestCountsAreLittleEndianAtTheirOffsets() {
        byte[] p = ExitBench.program(0x01020304);
        assertEquals(0x04, p[9]);
        assertEquals(0x01, p[12]);
        assertEquals(0x04, p[29]);
        assertEquals(0x01, p[32]);
        assertEquals((byte) 0xee, p[13], "out dx, al right after the first mov ecx");
        assertEquals((byte) 0xa2, p[33], "mov [moffs16], al right after the second mov ecx");
    }
}
