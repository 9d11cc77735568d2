package dev.panamax.tests.bench;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.GuestModules;
import dev.panamax.tests.harness.GuestCommand;
import dev.panamax.tests.harness.GuestRunner;
import dev.panamax.tests.harness.HostVirtualization;
import dev.panamax.tests.harness.NestedHarness;
import dev.panamax.tests.harness.Result;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Panamax beside QEMU: prints {@code what | panamax | other | ratio (panamax/other) | runs}, each figure the
 * median of several runs with its min–max. Run by {@code scripts/bench} (see {@code docs/performance.md}).
 *
 * <p>Everything that needs KVM runs in ONE {@link GuestRunner} session (nested in an L1 VM under QEMU TCG
 * where this host has no usable KVM), so Panamax and QEMU always share the same machine and the same noise;
 * times are taken with L1's clock ({@code date +%s%N}) around each command, never with the L2 guest's clock:
 * <ul>
 * <li>{@code boot}: the same kernel, initramfs and command line, 1 vCPU, 256 MiB: Panamax
 *     ({@code ./panamax run}) vs {@code qemu-system-x86_64 -enable-kvm -cpu host} with {@code -machine q35}
 *     (SeaBIOS) and with {@code -machine microvm} (qboot); from process start to the guest init's first line
 *     ({@code panamax: init reached}) and to the VMM's exit (the init writes its status to port 0xf4 at once:
 *     Panamax's exit port, QEMU's {@code isa-debug-exit} at the same port); Panamax boots once more with
 *     {@code --memory-backend memfd} (its default is anonymous RAM with {@code MADV_HUGEPAGE}, as QEMU's);</li>
 * <li>{@code memory}: the VMM's resident memory beyond guest RAM ({@code RssAnon + RssFile} from
 *     /proc/PID/status, guest RAM being a memfd in all ({@code --memory-backend memfd}): {@code RssShmem}), sampled 1 s after the guest's init
 *     says it idles;</li>
 * <li>{@code exits}: ns per port-I/O and per MMIO exit, {@link ExitBench} (Panamax's KvmVcpu) vs
 *     {@code exit_bench.c} (the same KVM_RUN loop in C), first rep of each process dropped (JIT warm-up).</li>
 * <li>{@code passthrough}: an NVMe controller assigned with {@code vfio-pci}: the guest's own {@code nvme} driver
 *     reads the whole namespace {@value #PT_PASSES} times with {@code O_DIRECT}, in Panamax and in QEMU q35
 *     ({@code -device vfio-pci,host=BDF}); MiB/s from L1's clock at the guest's {@code BENCH-PT-START} and
 *     {@code BENCH-PT-END} lines. Nested, L1 gets QEMU's emulated {@code intel-iommu} and an emulated NVMe
 *     controller on a {@value #PT_DISK_MIB} MiB file; directly, it needs {@code PANAMAX_BENCH_NVME=BDF}, an
 *     NVMe controller already bound to vfio-pci whose contents may be read.</li>
 * <li>{@code vfio-user-blk}: a virtio-blk disk served by {@code panamax device virtio-blk} over vfio-user vs QEMU q35's
 *     own {@code virtio-blk-pci} on the same file, read in the guest as in {@code passthrough} ({@link DiskBench});</li>
 * <li>{@code test}: {@code ./panamax test} of a one-line script, start to verdict, vs QEMU microvm booting the same
 *     script as its init job ({@link TestBench}).</li>
 * </ul>
 * {@code vfio-user} runs on this host ({@link VfioUserBench}).
 *
 * <p>Arguments: {@code [--runs N] [--memory-runs N] [--exits N] [--dry-run] [--diagnose] [--only boot,memory,exits,vfio-user,passthrough,vfio-user-blk,test]}.
 */
public final class Bench {
    static final Path REPO = locateRepo();
    static final Path WORK = REPO.resolve("tests/target/bench");
    /** The first line of the guest's /init ({@link ImageBuilder#INIT_REACHED}). */
    static final String INIT_LINE = ImageBuilder.INIT_REACHED;
    static final String CMDLINE = "console=ttyS0 quiet panic=-1 reboot=t";
    static final String MEMORY = "256M";
    static final List<String> PIECES = List.of("boot", "memory", "exits", "vfio-user", "passthrough", "vfio-user-blk", "test");
    /** The NVMe namespace of the passthrough piece, in MiB, and how many times the guest reads it whole per boot. */
    static final int PT_DISK_MIB = 64;
    static final int PT_PASSES = 16;
    /** Set to the BDF of an NVMe controller bound to vfio-pci to run the passthrough piece directly on this host. */
    static final String PT_DEVICE_VARIABLE = "PANAMAX_BENCH_NVME";

    private Bench() {
    }

    static Path locateRepo() {
        Path p = Path.of("").toAbsolutePath();
        for (Path q = p; q != null; q = q.getParent()) {
            if (Files.isRegularFile(q.resolve("panamax")) && Files.isDirectory(q.resolve("tests"))) {
                return q;
            }
        }
        throw new IllegalStateException("run from the Panamax repository (no ./panamax above " + p + ")");
    }

    public static void main(String[] args) throws Exception {
        int runs = 3;
        int exits = 20000;
        int memoryRuns = 1;
        boolean dryRun = false;
        boolean diagnose = false;
        Set<String> only = Set.copyOf(PIECES);
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--runs" -> runs = positive(args, ++i);
                case "--exits" -> exits = positive(args, ++i);
                case "--memory-runs" -> memoryRuns = positive(args, ++i);
                case "--dry-run" -> dryRun = true;
                case "--diagnose" -> diagnose = true;
                case "--only" -> {
                    only = Set.of(value(args, ++i).split(","));
                    for (String s : only) {
                        if (!PIECES.contains(s)) {
                            throw new IllegalArgumentException("--only: unknown piece '" + s + "' (known: " + PIECES + ")");
                        }
                    }
                }
                default -> throw new IllegalArgumentException("unknown argument '" + args[i]
                        + "' (usage: Bench [--runs N] [--memory-runs N] [--exits N] [--dry-run] [--diagnose] [--only " + String.join(",", PIECES) + "])");
            }
        }
        List<Row> rows = new ArrayList<>();
        Files.createDirectories(WORK);
        if (only.stream().anyMatch(p -> !p.equals("vfio-user"))) {
            rows.addAll(guestPieces(only, runs, memoryRuns, exits, dryRun, diagnose));
        }
        if (only.contains("vfio-user")) {
            rows.addAll(vfioUser(runs));
        }
        if (dryRun) {
            return;
        }
        String table = table(rows);
        System.out.println();
        System.out.println(table);
        Files.writeString(WORK.resolve("table.md"), table);
    }

    static int positive(String[] args, int i) {
        int n = Integer.parseInt(value(args, i));
        if (n <= 0) {
            throw new IllegalArgumentException(args[i - 1] + " " + n + " is not positive");
        }
        return n;
    }

    static String value(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a value");
        }
        return args[i];
    }

    // ------------------------------------------------------------------ the KVM pieces, one runner session

    static List<Row> guestPieces(Set<String> only, int runs, int memoryRuns, int exits, boolean dryRun, boolean diagnose) throws Exception {
        HostVirtualization.Mode mode = HostVirtualization.probe().chooseMode(System.getenv(HostVirtualization.MODE_VARIABLE));
        StringBuilder sh = new StringBuilder();
        sh.append(PRELUDE);
        if (only.contains("boot") || only.contains("memory")) {
            Path init = WORK.resolve("init.sh");
            Files.writeString(init, """
                    #!/bin/sh
                    # The bench guest's script: idle a while only when the command line asks (memory runs).
                    if grep -q bench.idle /proc/cmdline; then echo BENCH-IDLE; sleep 5; fi
                    exit 0
                    """);
            GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).initScript(init)
                    .build(WORK.resolve("image"));
            sh.append("K=").append(image.kernel()).append("\nI=").append(image.initramfs()).append('\n');
        }
        if (only.contains("exits")) {
            Path c = WORK.resolve("exit_bench");
            if (!Files.isExecutable(c)) {
                throw new IllegalStateException(c + " is missing: scripts/bench compiles it (gcc tests/src/test/c/exit_bench.c)");
            }
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            String opts = System.getenv().getOrDefault("PANAMAX_JVM_OPTIONS", "--enable-native-access=ALL-UNNAMED");
            String cp = REPO.resolve("tests/target/test-classes") + ":" + REPO.resolve("tests/target/lib/tests.jar")
                    + ":" + REPO.resolve("launcher/target/lib") + "/*";
            // Also once with the JVM's default tiered compilation (C2 for hot code), which ./panamax gives up for a
            // faster start (-XX:TieredStopAtLevel=1: C1 only).
            String c2opts = opts.replace("-XX:TieredStopAtLevel=1", "").trim();
            // A JVM that dies in L1 leaves its hs_err report in the writable share, not in L1's /tmp.
            String errorFile = " -XX:ErrorFile=" + WORK.resolve("out").resolve("hs_err_pid%p.log");
            opts += errorFile;
            c2opts += errorFile;
            for (int r = 1; r <= runs; r++) {
                sh.append(java).append(' ').append(opts).append(" -cp '").append(cp).append("' ")
                        .append(ExitBench.class.getName()).append(' ').append(exits).append(" 4 || echo BENCH-FAILED exits-java\n");
                sh.append(c).append(' ').append(exits).append(" 4 || echo BENCH-FAILED exits-c\n");
                sh.append(java).append(' ').append(c2opts).append(" -cp '").append(cp).append("' ")
                        .append(ExitBench.class.getName()).append(' ').append(exits).append(" 4 exits-java-c2 || echo BENCH-FAILED exits-java-c2\n");
            }
        }
        if (only.contains("boot")) {
            for (int r = 1; r <= runs; r++) {
                // Interleaved, so that a slow phase of the shared machine hits every VMM alike.
                // --stats adds the line "process start to first KVM_RUN: N ms" (the boot function reads it).
                sh.append("boot panamax \"$CMD\" '").append(PANAMAX).append(" --stats'\n");
                // The same guest without ACPI (MP table only): what reading the ACPI tables costs a boot.
                sh.append("boot panamax-acpi-off \"$CMD acpi=off\" '").append(PANAMAX).append("'\n");
                // Guest RAM as a memfd (what a vfio-user device needs) instead of the default anonymous memory, with
                // the host's shmem_enabled as it is (Debian: never, so 4 KiB pages): what the backing costs a boot.
                sh.append("boot panamax-memfd \"$CMD\" '").append(PANAMAX).append(" --memory-backend memfd'\n");
                sh.append("boot q35 \"$CMD\" '").append(QEMU_Q35).append("'\n");
                sh.append("boot microvm \"$CMD\" '").append(QEMU_MICROVM).append("'\n");
                // The JVM's share: ./panamax --version starts the same JVM and class path, and exits.
                sh.append("boot jvm \"$CMD\" './panamax --version'\n");
                // The JVM's own floor: java -version with ./panamax's options and AOT cache (scripts/lib.sh).
                sh.append("boot jvm-floor \"$CMD\" '").append(JAVA_VERSION_FLOOR).append("'\n");
            }
        }
        if (only.contains("memory")) {
            for (int r = 1; r <= memoryRuns; r++) {
                // Guest RAM as a memfd in every VMM, so that it is RssShmem and RssAnon + RssFile is the VMM's own.
                sh.append("mem panamax \"$CMD bench.idle\" '").append(PANAMAX).append(" --memory-backend memfd'\n");
                sh.append("mem q35 \"$CMD bench.idle\" '").append(QEMU_Q35).append(' ').append(MEMFD).append("'\n");
                sh.append("mem microvm \"$CMD bench.idle\" '").append(QEMU_MICROVM.replace("microvm,", "microvm,memory-backend=ram0,"))
                        .append(" -object memory-backend-memfd,id=ram0,size=").append(MEMORY).append("'\n");
            }
            // Not in the table: where the JVM's own memory goes (Native Memory Tracking's summary, printed at exit
            // into the session's output under "panamax-nmt|"): heap, metaspace, code cache, thread stacks, GC.
            sh.append("boot panamax-nmt \"$CMD\" 'JAVA_TOOL_OPTIONS=\"-XX:NativeMemoryTracking=summary")
                    .append(" -XX:+UnlockDiagnosticVMOptions -XX:+PrintNMTStatistics\" ").append(PANAMAX).append("'\n");
        }
        boolean passthrough = only.contains("passthrough");
        if (passthrough && mode == HostVirtualization.Mode.DIRECT && System.getenv(PT_DEVICE_VARIABLE) == null) {
            System.out.println("bench: passthrough skipped: this host runs KVM directly and has no emulated NVMe to give;"
                    + " set " + PT_DEVICE_VARIABLE + "=BDF to an NVMe controller bound to vfio-pci");
            passthrough = false;
        }
        if (passthrough) {
            sh.append(passthroughScript(runs, mode));
        }
        if (only.contains("vfio-user-blk")) {
            sh.append(DiskBench.script(runs));
        }
        if (only.contains("test")) {
            sh.append(TestBench.script(runs));
        }
        if (diagnose) {
            // Not in the table: one Panamax and one QEMU q35 boot with the kernel's messages on, so that the
            // runner's log (L0 clock on every console line) shows where each boot spends its time.
            sh.append("boot panamax-verbose \"console=ttyS0 panic=-1 reboot=t loglevel=7\" '").append(PANAMAX).append("'\n");
            sh.append("boot q35-verbose \"console=ttyS0 panic=-1 reboot=t loglevel=7\" '").append(QEMU_Q35).append("'\n");
        }
        sh.append("echo BENCH-DONE\n");
        // The whole script's output also goes to a file in a writable share, so that a session that dies
        // (L1 killed from outside, a timeout) still leaves what it measured.
        Path out = WORK.resolve("out");
        Files.createDirectories(out);
        Path log = out.resolve("l1-output.txt");
        Files.deleteIfExists(log);
        String script = "(\n" + sh + ") 2>&1 | tee " + log + "\n";
        Files.writeString(WORK.resolve("l1-script.sh"), script);
        if (dryRun) {
            System.out.println("bench: --dry-run: the runner script is " + WORK.resolve("l1-script.sh"));
            return List.of();
        }

        GuestRunner runner = passthrough && mode == HostVirtualization.Mode.NESTED
                ? NestedHarness.builder().qemuArgs(nvmeQemuArgs()).writable(out).build()
                : GuestRunner.select(out);
        System.out.println("bench: running the KVM pieces " + runner.mode() + " (script: " + WORK.resolve("l1-script.sh") + ")");
        String output;
        try {
            Result r = runner.run(GuestCommand.of(script).in(REPO).withEnv("PANAMAX_NO_BUILD", "1")
                    .withTimeout(Duration.ofMinutes(40)));
            System.out.println("bench: runner session took " + r.elapsed().toSeconds() + " s, status " + r.exitStatus()
                    + "; output in " + log);
            output = r.output();
        } catch (RuntimeException e) {
            System.out.println("bench: WARNING: the runner session failed: " + e.getMessage().lines().findFirst().orElse(""));
            output = Files.exists(log) ? Files.readString(log) : "";
        }
        if (!output.contains("BENCH-DONE")) {
            System.out.println("bench: WARNING: the session did not finish its script; the table has what it measured");
        }
        return parse(output, runner.mode().toString().toLowerCase(Locale.ROOT));
    }

    /**
     * The passthrough piece's part of the runner script: binds the NVMe controller to vfio-pci (nested: L1's
     * emulated one, found by QEMU's vendor:device 1b36:0010; directly: {@code $PANAMAX_BENCH_NVME}), then boots
     * Panamax and QEMU q35 with it assigned, interleaved. The guest image loads the nvme driver; its script reads
     * the namespace once to warm up, then {@value #PT_PASSES} times between two marker lines.
     */
    static String passthroughScript(int runs, HostVirtualization.Mode mode) throws Exception {
        Path init = WORK.resolve("init-nvme.sh");
        Files.writeString(init, readPassesScript("nvme0n1", PT_PASSES, "grep nvme0q1 /proc/interrupts | head -n 1"));
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(GuestModules.NVME).initScript(init)
                .build(WORK.resolve("image-nvme"));
        if (mode == HostVirtualization.Mode.NESTED) {
            Path disk = WORK.resolve("nvme-disk.img");
            byte[] bytes = new byte[PT_DISK_MIB << 20];
            new Random(42).nextBytes(bytes);
            Files.write(disk, bytes);
        }
        StringBuilder sh = new StringBuilder();
        sh.append("KN=").append(image.kernel()).append("\nIN=").append(image.initramfs()).append('\n');
        if (mode == HostVirtualization.Mode.NESTED) {
            sh.append("""
                    bdf=$(for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor):$(cat $d/device)" = 0x1b36:0x0010 ] && basename $d; done)
                    echo vfio-pci > /sys/bus/pci/devices/$bdf/driver_override && echo $bdf > /sys/bus/pci/drivers_probe
                    """);
        } else {
            sh.append("bdf=$").append(PT_DEVICE_VARIABLE).append('\n');
        }
        sh.append("echo \"bench: NVMe $bdf driver=$(basename $(readlink /sys/bus/pci/devices/$bdf/driver))\"\n");
        for (int r = 1; r <= runs; r++) {
            sh.append("pt panamax-pt \"$CMD\" '").append(PANAMAX_PT).append("'\n");
            sh.append("pt q35-pt \"$CMD\" '").append(QEMU_Q35_PT).append("'\n");
        }
        return sh.toString();
    }

    /**
     * A throughput bench guest's script: waits for block device {@code dev}, reads 4 MiB of it to warm up, prints
     * {@code BENCH-PT-START}, reads it whole {@code passes} times with {@code dd bs=1M iflag=direct}, prints
     * {@code BENCH-PT-END bytes=N} (what the {@code pt} function stamps with L1's clock), then runs {@code irqs} (the
     * interrupt lines that show how completions came) and exits 0; {@code BENCH-PT-FAIL} and 1 when the device is not there.
     */
    static String readPassesScript(String dev, int passes, String irqs) {
        return """
                #!/bin/sh
                # A bench guest: read /dev/%1$s whole, %2$d times, with O_DIRECT, between two marker lines.
                for i in $(seq 1 300); do [ -b /dev/%1$s ] && break; sleep 0.1; done
                [ -b /dev/%1$s ] || { echo "BENCH-PT-FAIL no /dev/%1$s"; exit 1; }
                dd if=/dev/%1$s of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null || { echo "BENCH-PT-FAIL read"; exit 1; }
                bytes=$(( $(cat /sys/block/%1$s/size) * 512 ))
                echo "BENCH-PT-START"
                for pass in $(seq 1 %2$d); do dd if=/dev/%1$s of=/dev/null bs=1M iflag=direct 2>/dev/null; done
                echo "BENCH-PT-END bytes=$(( bytes * %2$d ))"
                %3$s
                exit 0
                """.formatted(dev, passes, irqs);
    }

    /** L1's extra devices for the passthrough piece: an IOMMU, and an NVMe controller on the bench's disk file. */
    static String[] nvmeQemuArgs() {
        return new String[] {"-device", "intel-iommu",
                "-drive", "if=none,id=nvme0,file=" + WORK.resolve("nvme-disk.img") + ",format=raw",
                "-device", "nvme,drive=nvme0,serial=bench0"};
    }

    /**
     * Shell functions of the runner script (dash): {@code boot LABEL CMDLINE 'COMMAND'} and {@code mem LABEL CMDLINE 'COMMAND'};
     * COMMAND is eval'd after {@code cmd} is set to CMDLINE, so it may say "$cmd".
     */
    static final String PRELUDE = """
            set -u
            CMD='%s'
            now() { date +%%s%%N; }
            # boot LABEL CMDLINE 'COMMAND': L1's clock at start, at the init's first line, at the VMM's exit.
            boot() {
                label=$1; cmd=$2; run=$3
                t0=$(now)
                eval "$run" </dev/null 2>&1 | {
                    seen=0
                    while IFS= read -r l; do
                        case "$l" in *'%s'*)
                            if [ $seen = 0 ]; then seen=1; echo "BENCH $label init_ns=$(( $(now) - t0 ))"; fi;;
                            *'process start to first KVM_RUN: '*' ms'*)
                                f=${l##*KVM_RUN: }; echo "BENCH $label firstrun_ns=$(( ${f%%%% ms*} * 1000000 ))";;
                        esac
                        printf '  %%s| %%s\\n' "$label" "$l"
                    done
                }
                echo "BENCH $label exit_ns=$(( $(now) - t0 ))"
            }
            # pt LABEL CMDLINE 'COMMAND': L1's clock at the guest's BENCH-PT-START and BENCH-PT-END lines.
            pt() {
                label=$1; cmd=$2; run=$3
                eval "$run" </dev/null 2>&1 | {
                    while IFS= read -r l; do
                        case "$l" in
                            *BENCH-PT-START*) s=$(now);;
                            *BENCH-PT-END*) e=$(now); echo "BENCH $label pt_ns=$(( e - s )) ${l##*BENCH-PT-END }";;
                        esac
                        printf '  %%s| %%s\\n' "$label" "$l"
                    done
                }
            }
            # mem LABEL CMDLINE 'COMMAND': /proc/PID/status 1 s after the guest says it idles.
            mem() {
                label=$1; cmd=$2; run=$3
                log=/tmp/bench-mem-$label.log
                eval "exec $run" </dev/null >"$log" 2>&1 &
                pid=$!
                n=0
                while ! grep -q BENCH-IDLE "$log"; do
                    sleep 0.2; n=$((n + 1))
                    if [ $n -ge 1500 ] || ! kill -0 $pid 2>/dev/null; then break; fi
                done
                sleep 1
                echo "BENCH $label mem comm=$(cat /proc/$pid/comm) $(awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ { sub(":", "", $1); printf "%%s=%%s ", $1, $2 }' /proc/$pid/status)"
                wait $pid
                tail -n 3 "$log" | sed "s/^/  $label-mem| /"
            }
            """.formatted(CMDLINE, INIT_LINE);

    /** {@code java -version} with {@code ./panamax}'s JVM options and AOT cache, as {@code scripts/startup-bench} runs it. */
    static final String JAVA_VERSION_FLOOR = "bash -c \". scripts/lib.sh; j=\\$(panamax_java_home);"
            + " exec \\$j/bin/java \\$(panamax_jvm_base_options) \\$(PANAMAX_NO_BUILD=1 panamax_startup_options \\$j) -version\"";
    static final String PANAMAX = "./panamax run -k \"$K\" -i \"$I\" -c 1 -m " + MEMORY + " --cmdline \"$cmd\" --timeout 300s";
    static final String QEMU_COMMON = " -enable-kvm -cpu host -smp 1 -m " + MEMORY
            + " -nodefaults -no-user-config -display none -serial stdio -no-reboot"
            + " -kernel \"$K\" -initrd \"$I\" -append \"$cmd\" -device isa-debug-exit,iobase=0xf4,iosize=0x01";
    static final String QEMU_Q35 = "qemu-system-x86_64 -machine q35" + QEMU_COMMON;
    static final String QEMU_MICROVM = "qemu-system-x86_64 -machine microvm,x-option-roms=off,acpi=off,rtc=on" + QEMU_COMMON;
    /** The passthrough piece's VMMs: the NVMe image ($KN, $IN) and the controller at $bdf. */
    static final String PANAMAX_PT = PANAMAX.replace("\"$K\"", "\"$KN\"").replace("\"$I\"", "\"$IN\"") + " --device vfio-pci,host=$bdf";
    static final String QEMU_Q35_PT = QEMU_Q35.replace("\"$K\"", "\"$KN\"").replace("\"$I\"", "\"$IN\"") + " -device vfio-pci,host=$bdf";
    /** Guest RAM as a memfd, as Panamax has it, so that RssShmem is the guest's and the rest the VMM's. */
    static final String MEMFD = "-object memory-backend-memfd,id=ram0,size=" + MEMORY + " -machine memory-backend=ram0";

    static final Pattern LINE = Pattern.compile("^BENCH (\\S+) (.*)$", Pattern.MULTILINE);
    static final Pattern KV = Pattern.compile("(\\w+)=(\\S+)");

    static List<Row> parse(String out, String mode) {
        Map<String, List<Double>> v = new LinkedHashMap<>();
        Matcher m = LINE.matcher(out);
        while (m.find()) {
            String label = m.group(1);
            Map<String, String> kv = new LinkedHashMap<>();
            Matcher k = KV.matcher(m.group(2));
            while (k.find()) {
                kv.put(k.group(1), k.group(2));
            }
            if (kv.containsKey("rep") && kv.get("rep").equals("0")) {
                continue; // each exit-bench process's first rep warms up (JIT, page faults)
            }
            if (m.group(2).startsWith("mem ")) {
                if (kv.containsKey("RssAnon") && kv.containsKey("RssFile")) {
                    add(v, label + ".mem", (Long.parseLong(kv.get("RssAnon")) + Long.parseLong(kv.get("RssFile"))) / 1024.0);
                    add(v, label + ".anon", Long.parseLong(kv.get("RssAnon")) / 1024.0);
                    add(v, label + ".shmem", Long.parseLong(kv.get("RssShmem")) / 1024.0);
                }
                continue;
            }
            if (kv.containsKey("pt_ns") && kv.containsKey("bytes")) {
                double seconds = Double.parseDouble(kv.get("pt_ns")) / 1e9;
                add(v, label + ".MiBs", Long.parseLong(kv.get("bytes")) / (1024.0 * 1024.0) / seconds);
                continue;
            }
            for (var e : kv.entrySet()) {
                if (e.getKey().endsWith("_ns") && !label.startsWith("exits")) {
                    add(v, label + "." + e.getKey(), Double.parseDouble(e.getValue()) / 1e6); // ms
                } else if (e.getKey().endsWith("_ns")) {
                    add(v, label + "." + e.getKey(), Double.parseDouble(e.getValue()));
                }
            }
        }
        List<Row> rows = new ArrayList<>();
        String where = " (" + mode + ")";
        for (String other : List.of("q35", "microvm")) {
            rows.add(Row.of("boot to guest init, ms, vs QEMU " + other + where, v.get("panamax.init_ns"), v.get(other + ".init_ns"), 0));
        }
        for (String other : List.of("q35", "microvm")) {
            rows.add(Row.of("boot to VMM exit, ms, vs QEMU " + other + where, v.get("panamax.exit_ns"), v.get(other + ".exit_ns"), 0));
        }
        rows.add(Row.of("boot to guest init, ms, with ACPI vs acpi=off (Panamax both)" + where,
                v.get("panamax.init_ns"), v.get("panamax-acpi-off.init_ns"), 0));
        rows.add(Row.of("boot to guest init, ms, anonymous RAM (default) vs memfd RAM (Panamax both)" + where,
                v.get("panamax.init_ns"), v.get("panamax-memfd.init_ns"), 0));
        for (String other : List.of("q35", "microvm")) {
            rows.add(Row.of("VMM RSS beyond guest RAM (anon+file), MiB, vs QEMU " + other + where,
                    v.get("panamax.mem"), v.get(other + ".mem"), 1));
            rows.add(Row.of("  of which anonymous, MiB, vs QEMU " + other, v.get("panamax.anon"), v.get(other + ".anon"), 1));
            rows.add(Row.of("  guest RAM touched (RssShmem), MiB, vs QEMU " + other, v.get("panamax.shmem"), v.get(other + ".shmem"), 1));
        }
        rows.add(Row.of("./panamax --version (JVM start to exit), ms, vs java -version (same options)" + where,
                v.get("jvm.exit_ns"), v.get("jvm-floor.exit_ns"), 0));
        rows.add(Row.of("process start to first KVM_RUN (--stats), ms, vs java -version (same options)" + where,
                v.get("panamax.firstrun_ns"), v.get("jvm-floor.exit_ns"), 0));
        rows.add(Row.of("port I/O exit round trip, ns, vs C" + where, v.get("exits-java.port_ns"), v.get("exits-c.port_ns"), 0));
        rows.add(Row.of("MMIO exit round trip, ns, vs C" + where, v.get("exits-java.mmio_ns"), v.get("exits-c.mmio_ns"), 0));
        rows.add(Row.of("port I/O exit round trip, ns, with C2, vs C" + where, v.get("exits-java-c2.port_ns"), v.get("exits-c.port_ns"), 0));
        rows.add(Row.of("MMIO exit round trip, ns, with C2, vs C" + where, v.get("exits-java-c2.mmio_ns"), v.get("exits-c.mmio_ns"), 0));
        rows.add(Row.of("NVMe sequential read in the guest via vfio-pci, MiB/s, vs QEMU q35" + where,
                v.get("panamax-pt.MiBs"), v.get("q35-pt.MiBs"), 1));
        rows.add(Row.of("virtio-blk over vfio-user sequential read in the guest, MiB/s, vs QEMU q35 virtio-blk (same file)" + where,
                v.get("panamax-blk.MiBs"), v.get("q35-blk.MiBs"), 1));
        rows.add(Row.of("virtio-blk over vfio-user, MiB/s, with ioeventfds (doorbells through KVM_IOEVENTFD) vs without (Panamax both)" + where,
                v.get("panamax-blk-iofd.MiBs"), v.get("panamax-blk.MiBs"), 1));
        rows.add(Row.of("panamax test of a one-line script, start to verdict, ms, vs QEMU microvm (same script)" + where,
                v.get("test-panamax.verdict_ns"), v.get("test-microvm.verdict_ns"), 0));
        rows.removeIf(row -> row.panamax == null && row.other == null);
        return rows;
    }

    static void add(Map<String, List<Double>> v, String key, double value) {
        v.computeIfAbsent(key, k -> new ArrayList<>()).add(value);
    }

    // ------------------------------------------------------------------ vfio-user, on this host

    static List<Row> vfioUser(int runs) throws Exception {
        Path dir = VfioUserBench.tempDir();
        int reads = 20000;
        long dmaBytes = 256L << 20;
        System.out.println("bench: vfio-user on this host: " + reads + " REGION_READs and " + (dmaBytes >> 20)
                + " MiB of DMA each way per run, with and without the RAM's fd");
        VfioUserBench.Round[] mapped = VfioUserBench.measure(dir, true, runs, reads, dmaBytes);
        VfioUserBench.Round[] messages = VfioUserBench.measure(dir, false, runs, reads, dmaBytes);
        Files.deleteIfExists(dir);
        List<Double> readUs = new ArrayList<>();
        for (VfioUserBench.Round r : mapped) {
            readUs.add(r.regionReadNs() / 1000);
        }
        for (VfioUserBench.Round r : messages) {
            readUs.add(r.regionReadNs() / 1000);
        }
        List<Row> rows = new ArrayList<>();
        rows.add(Row.of("vfio-user REGION_READ (4 B) round trip, us (host)", readUs, null, 1));
        rows.add(Row.of("vfio-user REGION_READs per second (host)", readUs.stream().map(u -> 1e6 / u).toList(), null, 0));
        rows.add(Row.of("vfio-user DMA read, MiB/s: DMA_READ messages vs mapped memfd (host)",
                Arrays.stream(messages).map(VfioUserBench.Round::dmaReadMiBs).toList(),
                Arrays.stream(mapped).map(VfioUserBench.Round::dmaReadMiBs).toList(), 0));
        rows.add(Row.of("vfio-user DMA write, MiB/s: DMA_WRITE messages vs mapped memfd (host)",
                Arrays.stream(messages).map(VfioUserBench.Round::dmaWriteMiBs).toList(),
                Arrays.stream(mapped).map(VfioUserBench.Round::dmaWriteMiBs).toList(), 0));
        return rows;
    }

    // ------------------------------------------------------------------ the table

    /** One line of the table; either side may be missing (null: not measured, or no run succeeded). */
    record Row(String what, List<Double> panamax, List<Double> other, int decimals) {
        static Row of(String what, List<Double> panamax, List<Double> other, int decimals) {
            return new Row(what, panamax == null || panamax.isEmpty() ? null : panamax,
                    other == null || other.isEmpty() ? null : other, decimals);
        }
    }

    static double median(List<Double> xs) {
        double[] s = xs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    static String cell(List<Double> xs, int decimals) {
        if (xs == null) {
            return "—";
        }
        String f = "%." + decimals + "f";
        double min = xs.stream().mapToDouble(Double::doubleValue).min().orElseThrow();
        double max = xs.stream().mapToDouble(Double::doubleValue).max().orElseThrow();
        return String.format(Locale.ROOT, f + " (" + f + "–" + f + ")", median(xs), min, max);
    }

    static String table(List<Row> rows) {
        StringBuilder t = new StringBuilder("| what | panamax | other | ratio (panamax/other) | runs |\n");
        t.append("| --- | ---: | ---: | ---: | ---: |\n");
        for (Row r : rows) {
            String ratio = r.panamax != null && r.other != null
                    ? String.format(Locale.ROOT, "%.2fx", median(r.panamax) / median(r.other)) : "—";
            String n = (r.panamax == null ? "0" : String.valueOf(r.panamax.size()))
                    + (r.other == null ? "" : " / " + r.other.size());
            t.append("| ").append(r.what).append(" | ").append(cell(r.panamax, r.decimals)).append(" | ")
                    .append(cell(r.other, r.decimals)).append(" | ").append(ratio).append(" | ").append(n).append(" |\n");
        }
        return t.toString();
    }
}
