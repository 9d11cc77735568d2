package dev.panamax.tests.bench;

import dev.panamax.images.DebianPackages;
import dev.panamax.images.GuestImage;
import dev.panamax.images.ImageBuilder;
import dev.panamax.tests.GuestModules;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * The {@code vfio-user-blk} piece of the runner script: a virtio-blk disk served over vfio-user by Panamax's own
 * server ({@code panamax device virtio-blk}, a second process) beside QEMU q35's built-in {@code virtio-blk-pci}
 * on the same file, and Panamax once more with {@code ioeventfd=on} (the doorbells the server offers by
 * {@code VFIO_USER_DEVICE_GET_REGION_IO_FDS} registered with {@code KVM_IOEVENTFD}: no socket round trip per notify;
 * off by default). The guest image loads {@code virtio_pci} and {@code virtio_blk}; its script reads 4 MiB of
 * {@code /dev/vda} to warm up, then the whole disk {@value #PASSES} times with {@code dd bs=1M iflag=direct}
 * between the {@code BENCH-PT-START} and {@code BENCH-PT-END} lines that {@link Bench}'s {@code pt} function
 * stamps with L1's clock (MiB/s, as the passthrough piece).
 *
 * <p>The host side is the same for both: a copy of the disk file in {@code /tmp} (nested: L1's RAM, not the 9p share,
 * whose per-read round trips to the host dominated the first measurements). Panamax's server reads it through a plain {@code FileChannel}
 * (no {@code O_DIRECT}: the host's page cache, {@code virtio/.../blk/VirtioBlk.java}), so QEMU gets
 * {@code cache=writeback} (its default: page cache, flushes honoured), not {@code cache=none} ({@code O_DIRECT}).
 * Both open the file read-only ({@code --read-only}, {@code readonly=on}): nested, L1 sees the repository
 * read-only, and the guest only reads.
 */
final class DiskBench {
    /** The disk file's size in MiB, and how many times the guest reads it whole per boot. */
    static final int DISK_MIB = 64;
    static final int PASSES = 8;
    /** The vfio-user server's socket, in L1's (or this host's) /tmp. */
    static final String SOCKET = "/tmp/panamax-bench-blk.sock";
    static final String PANAMAX_BLK = Bench.PANAMAX.replace("\"$K\"", "\"$KB\"").replace("\"$I\"", "\"$IB\"")
            + " --device vfio-user-pci,socket=" + SOCKET + ",timeout=60s";
    static final String QEMU_Q35_BLK = Bench.QEMU_Q35.replace("\"$K\"", "\"$KB\"").replace("\"$I\"", "\"$IB\"")
            + " -drive file=\"$DB\",if=none,id=d0,format=raw,cache=writeback,readonly=on -device virtio-blk-pci,drive=d0";

    private DiskBench() {
    }

    /** Builds the image and the disk file under {@link Bench#WORK}, and returns this piece's part of the runner script. */
    static String script(int runs) throws Exception {
        Path init = Bench.WORK.resolve("init-blk.sh");
        // After the passes: the interrupts, and how the guest's block layer cut the reads (/sys/block/vda/stat: read
        // I/Os, merges, sectors; the request size limits), to set beside the server's own counts.
        Files.writeString(init, Bench.readPassesScript("vda", PASSES, "grep -i virtio /proc/interrupts | head -n 3;"
                + " echo \"bench: vda stat $(cat /sys/block/vda/stat)\";"
                + " echo \"bench: vda max_segments=$(cat /sys/block/vda/queue/max_segments)"
                + " max_sectors_kb=$(cat /sys/block/vda/queue/max_sectors_kb) max_segment_size=$(cat /sys/block/vda/queue/max_segment_size)\""));
        GuestImage image = new ImageBuilder(DebianPackages.inDefaultCache()).modules(GuestModules.VIRTIO_BLK).initScript(init)
                .build(Bench.WORK.resolve("image-blk"));
        Path disk = Bench.WORK.resolve("blk-disk.img");
        byte[] bytes = new byte[DISK_MIB << 20];
        new Random(43).nextBytes(bytes);
        Files.write(disk, bytes);
        StringBuilder sh = new StringBuilder();
        sh.append("KB=").append(image.kernel()).append("\nIB=").append(image.initramfs()).append("\nDB=").append(disk).append('\n');
        // Both VMMs read a copy in /tmp: nested that is L1's RAM (its root is an initramfs), not the host's files over
        // 9p, where every read is a round trip to the host (no cache) and the file reads were most of what was timed.
        sh.append("cp \"$DB\" /tmp/panamax-bench-blk-disk.img && DB=/tmp/panamax-bench-blk-disk.img\n");
        // blk_serve: Panamax's virtio-blk server on $DB, waiting for its socket (a JVM's start, seconds nested).
        sh.append("blk_serve() {\n")
                .append("    rm -f ").append(SOCKET).append('\n')
                .append("    ./panamax device virtio-blk --socket ").append(SOCKET)
                .append(" --disk \"$DB\" --read-only >/tmp/panamax-bench-blk-server.log 2>&1 & server=$!\n")
                .append("    for i in $(seq 1 600); do [ -S ").append(SOCKET).append(" ] && return 0; sleep 0.1; done\n")
                .append("    echo \"BENCH-FAILED panamax-blk: no socket\"; tail -n 20 /tmp/panamax-bench-blk-server.log; return 1\n")
                .append("}\n");
        // blk_stop: the server's line for the client that just left (its counts and where its time went), then kill it.
        sh.append("blk_stop() {\n")
                .append("    for i in $(seq 1 50); do grep -q 'client disconnected' /tmp/panamax-bench-blk-server.log && break; sleep 0.1; done\n")
                .append("    grep 'client disconnected' /tmp/panamax-bench-blk-server.log | sed \"s/^/  $1-server| /\"\n")
                .append("    kill $server 2>/dev/null; wait $server 2>/dev/null\n")
                .append("}\n");
        for (int r = 1; r <= runs; r++) {
            // A fresh server per run (its start is outside the timed window: the guest's markers), killed after it.
            sh.append("if blk_serve; then pt panamax-blk \"$CMD\" '").append(PANAMAX_BLK).append("'; fi\n");
            sh.append("blk_stop panamax-blk\n");
            sh.append("pt q35-blk \"$CMD\" '").append(QEMU_Q35_BLK).append("'\n");
            // The same with the doorbells the server offers (VFIO_USER_DEVICE_GET_REGION_IO_FDS) registered with KVM.
            sh.append("if blk_serve; then pt panamax-blk-iofd \"$CMD\" '").append(PANAMAX_BLK.replace("timeout=60s", "timeout=60s,ioeventfd=on"))
                    .append("'; fi\n");
            sh.append("blk_stop panamax-blk-iofd\n");
        }
        return sh.toString();
    }
}
