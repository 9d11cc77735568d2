package dev.panamax.vmm.migration;

import dev.panamax.vmm.snapshot.MachineState;
import dev.panamax.vmm.snapshot.SnapshotManifest;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * The source's half of a live migration ({@link FrameChannel} gives the stream): pre-copy of guest RAM while the vCPUs
 * run, with the dirty log telling which pages to send again, then stop-and-copy. Round 0 sends every page that is not
 * zero (fresh RAM at the destination reads as zeros); each later round sends the pages written since the previous
 * one. When a round would have fewer than {@value #FINAL_ROUND_PAGES} pages, or after {@value #MAX_ROUNDS} rounds
 * (a guest writing faster than the socket carries), the VM is paused and its devices stopped ({@link Vm#capture}),
 * the last dirty pages, the machine's state and END go out, and the source waits for the destination's RUNNING. The
 * downtime is from that pause to RUNNING. The dirty log is the vCPUs' (KVM's) and the assigned devices' DMA logs; when
 * a device keeps none ({@link Vm#unloggedWriters}) there is no pre-copy: every non-zero page goes with the VM paused.
 *
 * <p>On any failure the source stops dirty logging, resumes the vCPUs if it paused them, and throws: the VM runs on
 * here. Once END is sent a lost RUNNING cannot tell a destination that runs from one that failed; the source then
 * resumes too (the destination, if it runs, has a copy: the user must stop one).
 */
public final class MigrationSource {
    private static final Logger log = LoggerFactory.getLogger(MigrationSource.class);

    /** A round with fewer dirty pages than this is the last (sent with the vCPUs paused). */
    public static final int FINAL_ROUND_PAGES = 256;
    /** Pre-copy rounds after which the VM is paused however many pages are dirty. */
    public static final int MAX_ROUNDS = 30;
    static final int PAGE = 4096;

    /** What the migration needs of the running machine. */
    public interface Vm {
        /** @return the machine's shape and assigned devices, as a snapshot's manifest has them */
        SnapshotManifest.Machine machine();

        List<SnapshotManifest.Device> devices();

        /** @return host-mapped guest RAM, all of it, in host-mapping order (a multiple of 4096 bytes) */
        MemorySegment ram();

        /** Starts recording the pages the vCPUs write. */
        void startDirtyLog();

        /**
         * @return the pages written since {@link #startDirtyLog} or the previous call, cleared: bit {@code p % 64} of
         *         word {@code p / 64} is page {@code p} of {@link #ram()} (offset {@code p * 4096}); as many words as
         *         {@code ram().byteSize() / 4096} bits need, or fewer
         */
        long[] dirtyPages();

        void stopDirtyLog();

        /**
         * @return by name, what writes guest RAM unseen by {@link #dirtyPages} once {@link #startDirtyLog} ran: an
         *         assigned device that cannot log its DMA (a vfio-user server without {@code
         *         VFIO_DEVICE_FEATURE_DMA_LOGGING_START}, a kernel VFIO device); empty when every writer is logged
         */
        List<String> unloggedWriters();

        /** @return whether the vCPUs are paused now */
        boolean paused();

        void pause();

        void resume();

        /**
         * @return everything but RAM, with the vCPUs paused; the assigned devices are stopped from here on (no DMA), so
         *         that {@link #dirtyPages} after it is the last word
         */
        MachineState capture();
    }

    /**
     * What a migration did.
     *
     * @param rounds         pre-copy rounds, the last one (paused) included
     * @param pagesSent      pages sent in all rounds
     * @param finalPages     pages sent with the VM paused
     * @param downtimeMillis from the pause to the destination's RUNNING
     * @param totalMillis    from connecting to RUNNING
     */
    public record Result(int rounds, long pagesSent, long finalPages, long downtimeMillis, long totalMillis) {
    }

    private final Vm vm;
    private final FrameChannel channel;
    private final ByteBuffer frame = ByteBuffer.allocate(FrameChannel.MAX_PAGES_PER_FRAME * FrameChannel.PAGE_RECORD);
    private int inFrame;

    private MigrationSource(Vm vm, FrameChannel channel) {
        this.vm = vm;
        this.channel = channel;
    }

    /**
     * Migrates {@code vm} to the destination listening on {@code socket}; on success the caller ends the VM here.
     *
     * @param timeout how long the destination may take to answer or take data, each time
     * @throws MigrationException naming what failed; the VM runs on as it was (running or paused)
     */
    public static Result migrate(Vm vm, Path socket, Duration timeout) {
        long start = System.nanoTime();
        SocketChannel ch;
        try {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            ch.connect(UnixDomainSocketAddress.of(socket));
        } catch (IOException | UnsupportedOperationException e) {
            throw new MigrationException("cannot connect to " + socket + " (is a destination waiting with --incoming unix:"
                    + socket + "?): " + e.getMessage(), e);
        }
        boolean wasPaused = vm.paused();
        try (FrameChannel c = new FrameChannel(ch, timeout)) {
            return new MigrationSource(vm, c).run(start, wasPaused);
        } catch (IOException e) {
            runOn(vm, wasPaused);
            throw new MigrationException("migration to " + socket + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            runOn(vm, wasPaused);
            throw e;
        }
    }

    /** After a failed migration the VM goes on as it was: no dirty log, running again if the migration paused it. */
    private static void runOn(Vm vm, boolean wasPaused) {
        vm.stopDirtyLog();
        if (!wasPaused && vm.paused()) {
            vm.resume();
        }
    }

    private Result run(long start, boolean wasPaused) throws IOException {
        channel.writeHeader();
        channel.write(FrameChannel.MACHINE, ByteBuffer.wrap(Json.MAPPER.writeValueAsBytes(
                new Json.Description(vm.machine(), vm.devices()))));
        MemorySegment ram = vm.ram();
        long pages = ram.byteSize() / PAGE;
        vm.startDirtyLog();
        List<String> unlogged = vm.unloggedWriters();
        long sent = 0;
        int round = 0;
        long[] dirty = null;
        if (unlogged.isEmpty()) {
            sent = sendRound(round++, ram, null, pages, true);
            dirty = vm.dirtyPages();
            while (round < MAX_ROUNDS && count(dirty, pages) >= FINAL_ROUND_PAGES) {
                sent += sendRound(round++, ram, dirty, pages, false);
                dirty = vm.dirtyPages();
            }
        } else {
            // A page such a writer changes after it was sent would reach the destination stale: no pre-copy.
            log.info("migration: {} write guest RAM without a dirty log (no DMA logging): every page goes with the VM paused",
                    unlogged);
        }
        vm.pause();
        long paused = System.nanoTime();
        MachineState state = vm.capture(); // stops the devices: the dirty log read next holds their last writes
        long last;
        if (dirty == null) {
            last = sendRound(round, ram, null, pages, true);
        } else {
            or(dirty, vm.dirtyPages());
            last = sendRound(round, ram, dirty, pages, false);
        }
        sent += last;
        byte[] json = Json.MAPPER.writeValueAsBytes(state);
        channel.write(FrameChannel.STATE, ByteBuffer.wrap(json));
        channel.write(FrameChannel.END);
        log.info("migration: {} rounds, {} pages ({} MiB) sent, the last {} pages and {} KiB of state with the VM paused;"
                + " waiting for the destination", round + 1, sent, sent * PAGE >> 20, last, json.length >> 10);
        channel.read(FrameChannel.RUNNING);
        long now = System.nanoTime();
        vm.stopDirtyLog();
        return new Result(round + 1, sent, last, (now - paused) / 1_000_000, (now - start) / 1_000_000);
    }

    /** Sends the pages of {@code dirty} (all non-zero pages when {@code all}), then ROUND_END; returns how many. */
    private long sendRound(int round, MemorySegment ram, long[] dirty, long pages, boolean all) {
        long n = 0;
        for (long p = 0; p < pages; p++) {
            MemorySegment page = ram.asSlice(p * PAGE, PAGE);
            if (all ? !isZero(page) : isSet(dirty, p)) {
                add(p * PAGE, page);
                n++;
            }
        }
        flush();
        channel.write(FrameChannel.ROUND_END, ByteBuffer.allocate(12).putInt(round).putLong(n).flip());
        log.debug("migration: round {}: {} pages", round, n);
        return n;
    }

    private void add(long offset, MemorySegment page) {
        frame.putLong(offset);
        frame.put(page.asByteBuffer());
        if (++inFrame == FrameChannel.MAX_PAGES_PER_FRAME) {
            flush();
        }
    }

    private void flush() {
        if (inFrame > 0) {
            channel.write(FrameChannel.PAGES, frame.flip());
            frame.clear();
            inFrame = 0;
        }
    }

    private static final MemorySegment ZERO_PAGE = java.lang.foreign.Arena.global().allocate(PAGE, PAGE);

    static boolean isZero(MemorySegment page) {
        return page.mismatch(ZERO_PAGE) == -1;
    }

    static boolean isSet(long[] bitmap, long page) {
        int word = (int) (page >>> 6);
        return bitmap != null && word < bitmap.length && (bitmap[word] & (1L << (page & 63))) != 0;
    }

    /** @return the set bits of {@code bitmap} below {@code pages} */
    static long count(long[] bitmap, long pages) {
        long n = 0;
        for (int w = 0; w < bitmap.length && (long) w * 64 < pages; w++) {
            n += Long.bitCount(bitmap[w]);
        }
        return n;
    }

    /** {@code into |= more}, over the words both have. */
    public static void or(long[] into, long[] more) {
        for (int w = 0; w < Math.min(into.length, more.length); w++) {
            into[w] |= more[w];
        }
    }

    static String text(ByteBuffer b) {
        return StandardCharsets.UTF_8.decode(b).toString();
    }
}
