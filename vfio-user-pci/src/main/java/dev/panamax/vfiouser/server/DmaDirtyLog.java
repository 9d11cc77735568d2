package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaLoggingReport;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.DmaRange;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The pages of client memory a device wrote while DMA logging is on ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}
 * to {@code _STOP} of {@code <linux/vfio.h>}): one bit per page of each logged range, set by {@link DeviceDma#write}
 * from any thread, read and cleared by {@link #report} ({@code _REPORT}: "read back and clear the device DMA log").
 * The ranges are fixed at START. DMA addresses and lengths are u64; every comparison is unsigned.
 */
final class DmaDirtyLog {
    /** The most pages all ranges may hold together: 2^27, a 16 MiB log (512 GiB of client memory in 4 KiB pages). */
    static final long MAX_PAGES = 1L << 27;
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    /** One logged range: its first byte, its length in bytes and its bitmap (bit {@code p % 64} of word {@code p / 64}). */
    private record Range(long iova, long length, long[] bits) {
        long last() {
            return iova + length - 1;
        }
    }

    private final long pageSize;
    private final int pageShift;
    /** By first DMA address, unsigned. */
    private final TreeMap<Long, Range> ranges = new TreeMap<>(Long::compareUnsigned);

    /**
     * @param pageSize bytes per bit: a power of two, at least 4096 (the kernel's {@code vfio_ioctl_device_feature_logging_start})
     * @param logged   the ranges; each non-empty, page-aligned, not wrapping past 2^64, none overlapping another
     * @throws VfioUserProtocolException EINVAL for a bad page size or range, E2BIG above {@link #MAX_PAGES} pages
     */
    DmaDirtyLog(long pageSize, List<DmaRange> logged) {
        if (pageSize < 4096 || Long.bitCount(pageSize) != 1) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging page size " + Long.toUnsignedString(pageSize)
                    + " is not a power of two of at least 4096");
        }
        this.pageSize = pageSize;
        this.pageShift = Long.numberOfTrailingZeros(pageSize);
        if (logged.isEmpty()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging of no range");
        }
        long pages = 0;
        for (DmaRange r : logged) {
            String name = String.format("DMA logging range 0x%x+0x%x", r.iova(), r.length());
            if (r.length() == 0 || ((r.iova() | r.length()) & (pageSize - 1)) != 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, name + " is empty or not aligned to " + pageSize + " bytes");
            }
            if (Long.compareUnsigned(r.iova() + r.length() - 1, r.iova()) < 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, name + " wraps past 2^64");
            }
            long n = r.length() >>> pageShift;
            if (Long.compareUnsigned(n, MAX_PAGES - pages) > 0) {
                throw new VfioUserProtocolException(Errno.E2BIG, "DMA logging of more than " + MAX_PAGES + " pages");
            }
            pages += n;
            Range range = new Range(r.iova(), r.length(), new long[(int) ((n + 63) / 64)]);
            Map.Entry<Long, Range> below = ranges.floorEntry(range.last());
            if (below != null && Long.compareUnsigned(below.getValue().last(), r.iova()) >= 0) {
                throw new VfioUserProtocolException(Errno.EINVAL, name + " overlaps another");
            }
            ranges.put(r.iova(), range);
        }
    }

    long pageSize() {
        return pageSize;
    }

    /** @return whether this log was started with {@code pageSize} and exactly {@code logged} (a START repeated) */
    boolean sameAs(long pageSize, List<DmaRange> logged) {
        if (pageSize != this.pageSize || logged.size() != ranges.size()) {
            return false;
        }
        for (DmaRange r : logged) {
            Range have = ranges.get(r.iova());
            if (have == null || have.length != r.length()) {
                return false;
            }
        }
        return true;
    }

    /** Marks the pages of {@code [iova, iova + bytes)} that lie in logged ranges; {@code bytes} at least 1, no wrap. */
    void mark(long iova, long bytes) {
        long last = iova + bytes - 1;
        Map.Entry<Long, Range> e = ranges.floorEntry(iova);
        Range r = e != null && Long.compareUnsigned(e.getValue().last(), iova) >= 0 ? e.getValue() : null;
        if (r == null) {
            e = ranges.higherEntry(iova);
            r = e != null && Long.compareUnsigned(e.getKey(), last) <= 0 ? e.getValue() : null;
        }
        while (r != null) {
            long from = Long.compareUnsigned(iova, r.iova) > 0 ? iova : r.iova;
            long to = Long.compareUnsigned(last, r.last()) < 0 ? last : r.last();
            setBits(r.bits, (from - r.iova) >>> pageShift, (to - r.iova) >>> pageShift);
            e = ranges.higherEntry(r.iova);
            r = e != null && Long.compareUnsigned(e.getKey(), last) <= 0 ? e.getValue() : null;
        }
    }

    /** Sets bits {@code first..last} (inclusive) of {@code bits}, atomically per word. */
    private static void setBits(long[] bits, long first, long last) {
        for (long w = first >>> 6; w <= last >>> 6; w++) {
            long lo = Math.max(first, w << 6) & 63;
            long hi = Math.min(last, (w << 6) + 63) & 63;
            long mask = (-1L >>> (63 - hi)) & (-1L << lo);
            if ((bits[(int) w] & mask) != mask) {
                WORDS.getAndBitwiseOr(bits, (int) w, mask);
            }
        }
    }

    /**
     * Reads and clears the bits of {@code [r.iova, r.iova + r.length)}.
     *
     * @return the bitmap, {@link DmaLoggingReport#bitmapBytes()} bytes: bit {@code i % 8} of byte {@code i / 8} is the
     *         page at {@code r.iova + i * pageSize}
     * @throws VfioUserProtocolException EINVAL when the page size is not the one logging started with, or the range is
     *         not page-aligned or does not lie within one logged range
     */
    byte[] report(DmaLoggingReport r) {
        String name = String.format("DMA logging report of 0x%x+0x%x", r.iova(), r.length());
        if (r.pageSize() != pageSize) {
            throw new VfioUserProtocolException(Errno.EINVAL, name + ": page size " + Long.toUnsignedString(r.pageSize())
                    + ", logging started with " + pageSize);
        }
        if (((r.iova() | r.length()) & (pageSize - 1)) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, name + " is not aligned to " + pageSize + " bytes");
        }
        Map.Entry<Long, Range> e = ranges.floorEntry(r.iova());
        Range range = e == null ? null : e.getValue();
        if (range == null || Long.compareUnsigned(r.iova() - range.iova, range.length) >= 0
                || Long.compareUnsigned(r.length(), range.length - (r.iova() - range.iova)) > 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, name + " does not lie within one logged range");
        }
        byte[] out = new byte[(int) r.bitmapBytes()]; // at most MAX_PAGES bits: the range lies in a logged one
        long first = (r.iova() - range.iova) >>> pageShift;
        long count = r.length() >>> pageShift;
        for (long w = first >>> 6; w <= (first + count - 1) >>> 6; w++) {
            long lo = Math.max(first, w << 6) & 63;
            long hi = Math.min(first + count - 1, (w << 6) + 63) & 63;
            long mask = (-1L >>> (63 - hi)) & (-1L << lo);
            long taken = (long) WORDS.getAndBitwiseAnd(range.bits, (int) w, ~mask) & mask;
            while (taken != 0) {
                long page = (w << 6) + Long.numberOfTrailingZeros(taken) - first;
                out[(int) (page >>> 3)] |= (byte) (1 << (page & 7));
                taken &= taken - 1;
            }
        }
        return out;
    }
}
