package dev.panamax.kvm;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.bus.BusCounts;
import dev.panamax.kvm.bindings.kvm_h;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The VM exits one vCPU took, for {@code --stats}: by {@code kvm_run.exit_reason} ({@code KVM_EXIT_*} of
 * {@code linux/kvm.h}), port I/O and MMIO accesses by device ({@link BusCounts}), and the {@code KVM_RUN} calls a
 * signal ended (EINTR: a kick). Written by the vCPU's thread only, as plain {@code long}s, with no lock and no
 * allocation per exit; read by another thread after the vCPU thread has ended (joined).
 */
public final class ExitCounts {
    /** Exit reasons counted one by one; KVM's go up to about 40. Larger ones add to {@link #otherReasons}. */
    static final int REASONS = 64;

    final long[] byReason = new long[REASONS];
    long otherReasons;
    long interrupted;
    final BusCounts pio = new BusCounts();
    final BusCounts mmio = new BusCounts();

    /** Counts one exit with {@code reason}: the vCPU loop's only work for statistics (an array increment). */
    void exit(int reason) {
        if (reason >= 0 && reason < REASONS) {
            byReason[reason]++;
        } else {
            otherReasons++;
        }
    }

    /** @return exits with {@code reason} ({@code KVM_EXIT_*}) */
    public long exits(int reason) {
        return reason >= 0 && reason < REASONS ? byReason[reason] : 0;
    }

    /** @return all exits to user space, not counting the interrupted {@code KVM_RUN}s */
    public long total() {
        long t = otherReasons;
        for (long c : byReason) {
            t += c;
        }
        return t;
    }

    /** @return {@code KVM_RUN} calls that ended with EINTR or EAGAIN: a kick ({@code immediate_exit} or the kick signal) */
    public long interrupted() {
        return interrupted;
    }

    /** @return port I/O accesses by device (string I/O: one per element) */
    public BusCounts pio() {
        return pio;
    }

    /** @return MMIO accesses by device */
    public BusCounts mmio() {
        return mmio;
    }

    /** @return the {@code linux/kvm.h} name of an exit reason, e.g. "KVM_EXIT_IO", or "exit reason N" */
    public static String reasonName(int reason) {
        if (reason == kvm_h.KVM_EXIT_UNKNOWN()) return "KVM_EXIT_UNKNOWN";
        if (reason == kvm_h.KVM_EXIT_EXCEPTION()) return "KVM_EXIT_EXCEPTION";
        if (reason == kvm_h.KVM_EXIT_IO()) return "KVM_EXIT_IO";
        if (reason == kvm_h.KVM_EXIT_HYPERCALL()) return "KVM_EXIT_HYPERCALL";
        if (reason == kvm_h.KVM_EXIT_DEBUG()) return "KVM_EXIT_DEBUG";
        if (reason == kvm_h.KVM_EXIT_HLT()) return "KVM_EXIT_HLT";
        if (reason == kvm_h.KVM_EXIT_MMIO()) return "KVM_EXIT_MMIO";
        if (reason == kvm_h.KVM_EXIT_IRQ_WINDOW_OPEN()) return "KVM_EXIT_IRQ_WINDOW_OPEN";
        if (reason == kvm_h.KVM_EXIT_SHUTDOWN()) return "KVM_EXIT_SHUTDOWN";
        if (reason == kvm_h.KVM_EXIT_FAIL_ENTRY()) return "KVM_EXIT_FAIL_ENTRY";
        if (reason == kvm_h.KVM_EXIT_INTR()) return "KVM_EXIT_INTR";
        if (reason == kvm_h.KVM_EXIT_NMI()) return "KVM_EXIT_NMI";
        if (reason == kvm_h.KVM_EXIT_INTERNAL_ERROR()) return "KVM_EXIT_INTERNAL_ERROR";
        if (reason == kvm_h.KVM_EXIT_SYSTEM_EVENT()) return "KVM_EXIT_SYSTEM_EVENT";
        if (reason == kvm_h.KVM_EXIT_IOAPIC_EOI()) return "KVM_EXIT_IOAPIC_EOI";
        if (reason == kvm_h.KVM_EXIT_NOTIFY()) return "KVM_EXIT_NOTIFY";
        return "exit reason " + reason;
    }

    /**
     * The {@code --stats} table: one row per exit reason taken (in {@code KVM_EXIT_*} order), the port I/O and MMIO
     * rows by device under KVM_EXIT_IO and KVM_EXIT_MMIO, then the interrupted runs and the total; one column for
     * all vCPUs, then one per vCPU. For example:
     * <pre>
     * VM exits                      all   vcpu0   vcpu1
     * KVM_EXIT_IO                  1500    1400     100
     *   pio com1                   1450    1360      90
     * ...
     * total                        1500    1400     100
     * </pre>
     *
     * @param perVcpu the counts of vCPU 0, 1, ...
     * @param pio     the bus the port counts were taken on (names the devices)
     * @param mmio    the bus the MMIO counts were taken on
     * @return the lines, without line ends
     */
    public static List<String> table(List<ExitCounts> perVcpu, Bus pio, Bus mmio) {
        List<String> names = new ArrayList<>();
        List<long[]> rows = new ArrayList<>();
        for (int reason = 0; reason < REASONS; reason++) {
            final int r = reason;
            long[] row = row(perVcpu, c -> c.byReason[r]);
            if (row[0] == 0) {
                continue;
            }
            names.add(reasonName(reason));
            rows.add(row);
            if (reason == kvm_h.KVM_EXIT_IO()) {
                addBusRows(perVcpu, "pio", pio, true, names, rows);
            } else if (reason == kvm_h.KVM_EXIT_MMIO()) {
                addBusRows(perVcpu, "mmio", mmio, false, names, rows);
            }
        }
        long[] other = row(perVcpu, c -> c.otherReasons);
        if (other[0] != 0) {
            names.add("other exit reasons");
            rows.add(other);
        }
        long[] intr = row(perVcpu, c -> c.interrupted);
        if (intr[0] != 0) {
            names.add("KVM_RUN interrupted (EINTR)");
            rows.add(intr);
        }
        names.add("total exits");
        rows.add(row(perVcpu, ExitCounts::total));

        int width = "VM exits".length();
        for (String n : names) {
            width = Math.max(width, n.length());
        }
        int col = 8;
        for (long[] row : rows) {
            col = Math.max(col, Long.toString(row[0]).length() + 2);
        }
        List<String> lines = new ArrayList<>();
        StringBuilder head = new StringBuilder(pad("VM exits", width));
        head.append(leftPad("all", col));
        for (int v = 0; v < perVcpu.size(); v++) {
            head.append(leftPad("vcpu" + v, col));
        }
        lines.add(head.toString());
        for (int i = 0; i < rows.size(); i++) {
            StringBuilder line = new StringBuilder(pad(names.get(i), width));
            for (long c : rows.get(i)) {
                line.append(leftPad(Long.toString(c), col));
            }
            lines.add(line.toString());
        }
        return lines;
    }

    private static void addBusRows(List<ExitCounts> perVcpu, String label, Bus bus, boolean ports,
                                   List<String> names, List<long[]> rows) {
        List<Map<String, Long>> byName = new ArrayList<>();
        Set<String> devices = new LinkedHashSet<>();
        for (ExitCounts c : perVcpu) {
            Map<String, Long> m = (ports ? c.pio : c.mmio).byName(bus);
            byName.add(m);
            devices.addAll(m.keySet());
        }
        for (String d : devices) {
            long[] row = new long[perVcpu.size() + 1];
            for (int v = 0; v < perVcpu.size(); v++) {
                row[v + 1] = byName.get(v).getOrDefault(d, 0L);
                row[0] += row[v + 1];
            }
            names.add("  " + label + " " + d);
            rows.add(row);
        }
    }

    private static long[] row(List<ExitCounts> perVcpu, java.util.function.ToLongFunction<ExitCounts> f) {
        long[] row = new long[perVcpu.size() + 1];
        for (int v = 0; v < perVcpu.size(); v++) {
            row[v + 1] = f.applyAsLong(perVcpu.get(v));
            row[0] += row[v + 1];
        }
        return row;
    }

    private static String pad(String s, int width) {
        return s + " ".repeat(Math.max(0, width - s.length()));
    }

    private static String leftPad(String s, int width) {
        return " ".repeat(Math.max(0, width - s.length())) + s;
    }
}
