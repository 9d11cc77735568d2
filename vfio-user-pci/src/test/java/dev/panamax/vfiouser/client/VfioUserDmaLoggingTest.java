package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.DmaBackend;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaRange;
import dev.panamax.vfiouser.server.VfioUserDevice;
import dev.panamax.vfiouser.server.VfioUserServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.sys.MemFd;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.*;

/**
 * DMA logging ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}, {@code _REPORT}, {@code _STOP}) between the real
 * {@link VfioUserClient} and {@link VfioUserServer} over a real UNIX socket, guest RAM in a memfd the server maps:
 * the pages the server's device writes (directly in the mapping, or by DMA_WRITE messages when it maps nothing) come
 * back in the client's report, once; the device's reads and the client's own writes do not; a device without
 * migration offers no logging.
 */
@Timeout(30)
class VfioUserDmaLoggingTest {
    static final long PAGE = 4096;
    @TempDir
    Path dir;
    final List<AutoCloseable> open = new ArrayList<>();
    VfioUserServer server;

    VfioUserClient serve(boolean migratable, boolean dmaByMessages, long maxXfer) throws Exception {
        VfioUserMigrationTest.CounterDevice d = new VfioUserMigrationTest.CounterDevice();
        VfioUserDevice.Builder b = VfioUserDevice.builder(VfioUserDevice.pciFunction("log", 0x1af4, 0x10ff, 0xff0000, 0));
        if (migratable) {
            b.migration(d);
        }
        b.dmaByMessages(dmaByMessages);
        VfioUserMigrationTest.Served served = VfioUserMigrationTest.serve(dir, open, b.build(), "log",
                VfioUserClient.Options.defaults().withPostedWrites(false).withMaxDataXferSize(maxXfer));
        server = served.server();
        return served.client();
    }

    @AfterEach
    void tearDown() throws Exception {
        for (AutoCloseable c : open.reversed()) {
            c.close();
        }
    }

    static boolean bit(long[] words, long page) {
        return (words[(int) (page / 64)] & (1L << (page % 64))) != 0;
    }

    /** @param ramBytes guest RAM in a memfd at guest-physical 1 MiB, given to the server with DMA_MAP */
    void devicePagesComeBackOnce(boolean dmaByMessages, long maxXfer, long ramBytes) throws Exception {
        VfioUserClient c = serve(true, dmaByMessages, maxXfer);
        long gpa = 0x100000;
        try (MemFd memFd = new MemFd("guest-ram", ramBytes)) {
            RamRegion region = new RamRegion("ram", gpa, ramBytes, memFd.mapping(), memFd.fd(), 0);
            MemorySegment host = region.host();
            c.dma().dmaMap(gpa, region, DmaBackend.READ | DmaBackend.WRITE);
            VfioUserMigration m = c.migration();
            assertTrue(m.dmaLoggingOffered());
            long pages = ramBytes / PAGE;
            m.startDmaLogging(PAGE, List.of(new DmaRange(gpa, ramBytes)));
            m.startDmaLogging(PAGE, List.of(new DmaRange(gpa, ramBytes))); // the same again: nothing
            VfioUserClientException busy = assertThrows(VfioUserClientException.class,
                    () -> m.startDmaLogging(2 * PAGE, List.of(new DmaRange(gpa, ramBytes))));
            assertEquals(Errno.EBUSY, busy.errno());

            server.dma().write(gpa + 3 * PAGE + 100, new byte[]{1, 2, 3});
            server.dma().write(gpa + 7 * PAGE - 1, new byte[]{4, 5}); // across pages 6 and 7
            server.dma().read(gpa + 9 * PAGE, new byte[64]); // a read dirties nothing
            server.dma().write(gpa + (pages - 1) * PAGE, new byte[]{6}); // the last page
            host.set(JAVA_BYTE, 11 * PAGE, (byte) 9); // nor does the vCPU's write
            assertEquals(3, host.get(JAVA_BYTE, 3 * PAGE + 102), "the write reached guest RAM");

            long[] first = m.reportDmaLogging(gpa, ramBytes, PAGE);
            assertEquals((pages + 63) / 64, first.length);
            for (long p = 0; p < pages; p++) {
                assertEquals(p == 3 || p == 6 || p == 7 || p == pages - 1, bit(first, p), "page " + p);
            }
            assertArrayEquals(new long[first.length], m.reportDmaLogging(gpa, ramBytes, PAGE),
                    "a report clears what it read");
            server.dma().write(gpa + 15 * PAGE, new byte[(int) PAGE]);
            long[] part = m.reportDmaLogging(gpa + 8 * PAGE, 8 * PAGE, PAGE);
            assertEquals(1L << 7, part[0], "bits are relative to the report's first page");

            m.stopDmaLogging();
            VfioUserClientException off = assertThrows(VfioUserClientException.class, () -> m.reportDmaLogging(gpa, PAGE, PAGE));
            assertEquals(Errno.EINVAL, off.errno(), "no report once stopped");
            assertFalse(c.isBroken());
        }
    }

    @Test
    void pagesTheDeviceWritesInTheMappingComeBackOnce() throws Exception {
        devicePagesComeBackOnce(false, 1 << 20, 64 * PAGE);
    }

    @Test
    void pagesTheDeviceWritesByDmaWriteMessagesComeBackOnce() throws Exception {
        devicePagesComeBackOnce(true, 1 << 20, 64 * PAGE);
    }

    /**
     * The smallest max_data_xfer_size, 4096 bytes: a report's reply may carry 32512 pages (4064 bytes of bitmap beside
     * 32 of structs), so 70000 pages (273 MiB, sparse) take 3 requests, the last one partial.
     */
    @Test
    void aLargeReportGoesInPiecesTheClientCanReceive() throws Exception {
        devicePagesComeBackOnce(false, 4096, 70000 * PAGE);
    }

    @Test
    void aDeviceWithoutMigrationOffersNoLogging() throws Exception {
        VfioUserClient c = serve(false, false, 1 << 20);
        assertFalse(c.migration().dmaLoggingOffered());
        VfioUserClientException e = assertThrows(VfioUserClientException.class,
                () -> c.migration().startDmaLogging(PAGE, List.of(new DmaRange(0, PAGE))));
        assertEquals(Errno.ENOTTY, e.errno());
    }
}
