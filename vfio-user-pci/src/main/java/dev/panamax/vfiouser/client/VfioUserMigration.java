package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.Feature;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.MigState;
import dev.panamax.vfiouser.protocol.MigDataCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.OptionalLong;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;

/**
 * The client's side of migration v2 over vfio-user (libvfio-user's {@code include/vfio-user.h}; {@code <linux/vfio.h>}'s
 * {@code VFIO_DEVICE_FEATURE} and {@code enum vfio_device_mig_state}): probe the device's migration flags, get and set
 * its state with DEVICE_FEATURE, read its data in STOP_COPY with MIG_DATA_READ and write it in RESUMING with
 * MIG_DATA_WRITE, each request with the client's deadline ({@link VfioUserClient.Options#requestTimeout()}).
 *
 * <p>An error reply (the server refusing, e.g. an arc {@code <linux/vfio.h>} does not allow) throws
 * {@link VfioUserClientException} with its errno and leaves the device usable. A server that breaks the protocol
 * (a reply of the wrong size, a state other than the one asked for, more data than asked or than {@code maxBytes},
 * an unknown state) breaks the device: {@link VfioUserDeviceBrokenException}, one line naming what it did.
 */
public final class VfioUserMigration {
    private final VfioUserProxy proxy;

    VfioUserMigration(VfioUserProxy proxy) {
        this.proxy = proxy;
    }

    /**
     * Probes and reads {@code VFIO_DEVICE_FEATURE_MIGRATION}.
     *
     * @return the device's {@code struct vfio_device_feature_migration.flags} ({@code VFIO_MIGRATION_STOP_COPY}, ...),
     *         or empty when the server answers ENOTTY or EINVAL (no migration)
     * @throws VfioUserDeviceBrokenException when the reply is malformed or lacks {@code VFIO_MIGRATION_STOP_COPY}
     *         (vfio.h: "at least VFIO_MIGRATION_STOP_COPY must be set")
     */
    public OptionalLong probe() {
        try {
            feature(VFIO_DEVICE_FEATURE_MIGRATION() | VFIO_DEVICE_FEATURE_PROBE() | VFIO_DEVICE_FEATURE_GET(), new byte[0], 0, "probe");
        } catch (VfioUserClientException e) {
            if (e.errno() == Errno.ENOTTY || e.errno() == Errno.EINVAL) {
                return OptionalLong.empty();
            }
            throw e;
        }
        byte[] data = feature(VFIO_DEVICE_FEATURE_MIGRATION() | VFIO_DEVICE_FEATURE_GET(),
                new byte[DeviceFeatureCodec.MIGRATION_SIZE], DeviceFeatureCodec.MIGRATION_SIZE, "GET MIGRATION");
        long flags = decode(() -> DeviceFeatureCodec.decodeMigrationInfo(data).flags(), "GET MIGRATION");
        if ((flags & VFIO_MIGRATION_STOP_COPY()) == 0) {
            throw proxy.breakNow("DEVICE_FEATURE GET MIGRATION: flags 0x" + Long.toHexString(flags) + " lack VFIO_MIGRATION_STOP_COPY");
        }
        return OptionalLong.of(flags);
    }

    /**
     * @return the device's state ({@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}, GET)
     * @throws VfioUserClientException       when the server refuses (no migration: ENOTTY)
     * @throws VfioUserDeviceBrokenException for a malformed reply or a state the enum lacks
     */
    public VfioDeviceMigState state() {
        byte[] data = feature(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE() | VFIO_DEVICE_FEATURE_GET(),
                new byte[DeviceFeatureCodec.MIG_STATE_SIZE], DeviceFeatureCodec.MIG_STATE_SIZE, "GET MIG_DEVICE_STATE");
        return decode(() -> DeviceFeatureCodec.decodeMigState(data).state(), "GET MIG_DEVICE_STATE");
    }

    /**
     * Moves the device to {@code target} ({@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE}, SET); the server walks the
     * intermediate states of a combination transition.
     *
     * @throws VfioUserClientException       when the server refuses the transition (EINVAL: no arc; the state is unchanged)
     * @throws VfioUserDeviceBrokenException when the reply is malformed or names a state other than {@code target}
     */
    public void setState(VfioDeviceMigState target) {
        String what = "SET MIG_DEVICE_STATE " + target;
        byte[] data = feature(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE() | VFIO_DEVICE_FEATURE_SET(),
                DeviceFeatureCodec.encodeMigState(new MigState(target.code(), -1)), DeviceFeatureCodec.MIG_STATE_SIZE, what);
        VfioDeviceMigState now = decode(() -> DeviceFeatureCodec.decodeMigState(data).state(), what);
        if (now != target) {
            throw proxy.breakNow("DEVICE_FEATURE " + what + ": the server answered state " + now);
        }
    }

    /**
     * Reads the device's migration data in STOP_COPY, MIG_DATA_READ of at most {@link VfioUserClient#maxDataXferSize()}
     * bytes each, until the server answers 0 bytes.
     *
     * @param maxBytes the most bytes we take; a server sending more breaks the device
     * @throws VfioUserClientException       when the server refuses (not in STOP_COPY: EINVAL)
     * @throws VfioUserDeviceBrokenException for a malformed reply, more bytes than asked, or more than {@code maxBytes}
     */
    public byte[] readAll(long maxBytes) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        long chunk = proxy.maxXfer();
        while (true) {
            ByteBuf out = Unpooled.buffer();
            MigDataCodec.encode(MigDataCodec.ReadRequest.of(chunk), out);
            byte[] data;
            try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.MIG_DATA_READ, out, "MIG_DATA_READ")) {
                data = proxy.decode(m, "MIG_DATA_READ", in -> MigDataCodec.decodeData(in, chunk, "MIG_DATA_READ reply")).data();
            }
            if (data.length == 0) {
                return all.toByteArray();
            }
            if (all.size() + (long) data.length > maxBytes) {
                throw proxy.breakNow("MIG_DATA_READ: the server sends more than " + maxBytes + " bytes of migration data");
            }
            all.writeBytes(data);
        }
    }

    /**
     * Writes {@code data} as the device's migration data in RESUMING, MIG_DATA_WRITE of at most
     * {@link VfioUserClient#maxDataXferSize()} bytes each.
     *
     * @throws VfioUserClientException       when the server refuses (not in RESUMING: EINVAL; too much: E2BIG)
     * @throws VfioUserDeviceBrokenException for a reply that is not empty
     */
    public void writeAll(byte[] data) {
        int chunk = (int) Math.min(proxy.maxXfer(), Integer.MAX_VALUE);
        for (int at = 0; at < data.length; at += chunk) {
            ByteBuf out = Unpooled.buffer();
            MigDataCodec.encode(MigDataCodec.Data.of(Arrays.copyOfRange(data, at, Math.min(data.length, at + chunk))), out);
            try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.MIG_DATA_WRITE, out, "MIG_DATA_WRITE")) {
                proxy.decode(m, "MIG_DATA_WRITE", in -> null);
            }
        }
    }

    /**
     * Probes {@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}.
     *
     * @return whether the server offers DMA logging (false when it answers ENOTTY or EINVAL)
     */
    public boolean dmaLoggingOffered() {
        try {
            feature(DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_PROBE() | VFIO_DEVICE_FEATURE_SET(),
                    new byte[0], 0, "probe DMA_LOGGING_START");
            return true;
        } catch (VfioUserClientException e) {
            if (e.errno() == Errno.ENOTTY || e.errno() == Errno.EINVAL) {
                return false;
            }
            throw e;
        }
    }

    /**
     * Starts DMA logging ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START}, SET): the server records each page of
     * {@code ranges} its device writes.
     *
     * @param pageSize bytes per bit of the log: a power of two, at least 4096
     * @param ranges   DMA addresses (guest-physical) to log, each page-aligned
     * @throws VfioUserClientException when the server refuses (ENOTTY: not offered; EINVAL: bad parameters)
     */
    public void startDmaLogging(long pageSize, java.util.List<DeviceFeatureCodec.DmaRange> ranges) {
        feature(DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_SET(),
                DeviceFeatureCodec.encodeDmaLoggingControl(new DeviceFeatureCodec.DmaLoggingControl(pageSize, ranges)), 0,
                "DMA_LOGGING_START");
    }

    /** Stops DMA logging ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP}, SET). @throws VfioUserClientException when refused */
    public void stopDmaLogging() {
        feature(DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP | VFIO_DEVICE_FEATURE_SET(), new byte[0], 0,
                "DMA_LOGGING_STOP");
    }

    /**
     * Reads and clears the DMA log of {@code [iova, iova + length)} ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT},
     * GET), in as many requests as the bitmap needs to fit {@link VfioUserClient#maxDataXferSize()}.
     *
     * @param iova     DMA address (guest-physical) of the first byte, page-aligned
     * @param length   bytes, a non-zero multiple of {@code pageSize}
     * @param pageSize the page size logging started with
     * @return bit {@code p % 64} of word {@code p / 64} set when the device wrote the page at {@code iova + p * pageSize}
     * @throws VfioUserClientException       when the server refuses (EINVAL: logging off, a range it does not log)
     * @throws VfioUserDeviceBrokenException when a reply does not echo the request or has a bitmap of the wrong size
     */
    public long[] reportDmaLogging(long iova, long length, long pageSize) {
        if (pageSize < 4096 || Long.bitCount(pageSize) != 1 || length == 0 || ((iova | length) & (pageSize - 1)) != 0) {
            throw new IllegalArgumentException(String.format("DMA logging report of 0x%x+0x%x in %d-byte pages", iova, length, pageSize));
        }
        long pages = Long.divideUnsigned(length, pageSize);
        if (pages >= (1L << 31)) {
            throw new IllegalArgumentException("DMA logging report of " + Long.toUnsignedString(pages) + " pages");
        }
        long[] words = new long[(int) ((pages + 63) / 64)];
        // Pages per request: a multiple of 64 whose bitmap fits one reply beside the two structs.
        long perRequest = Math.max(64, (proxy.maxXfer() - DeviceFeatureCodec.SIZE - DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE) / 8 * 64);
        for (long done = 0; done < pages; done += perRequest) {
            long n = Math.min(perRequest, pages - done);
            DeviceFeatureCodec.DmaLoggingReport r = new DeviceFeatureCodec.DmaLoggingReport(iova + done * pageSize, n * pageSize, pageSize);
            String what = String.format("DMA_LOGGING_REPORT 0x%x+0x%x", r.iova(), r.length());
            int bitmap = (int) r.bitmapBytes();
            byte[] data = feature(DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT | VFIO_DEVICE_FEATURE_GET(),
                    DeviceFeatureCodec.encodeDmaLoggingReport(r, new byte[0]), DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE + bitmap, what);
            if (!decode(() -> DeviceFeatureCodec.decodeDmaLoggingReport(data), what).equals(r)) {
                throw proxy.breakNow("DEVICE_FEATURE " + what + ": the reply reports another range");
            }
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(data, DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE, bitmap)
                    .order(java.nio.ByteOrder.LITTLE_ENDIAN);
            int first = (int) (done / 64);
            for (int w = 0; w < bitmap / 8 && first + w < words.length; w++) {
                words[first + w] = b.getLong();
            }
        }
        if (pages % 64 != 0) {
            words[words.length - 1] &= -1L >>> (64 - pages % 64); // a server's bits past the range mean nothing
        }
        return words;
    }

    /** One DEVICE_FEATURE; returns the reply's data, which must be {@code replyData} bytes. */
    private byte[] feature(int flags, byte[] data, int replyData, String what) {
        ByteBuf out = Unpooled.buffer();
        DeviceFeatureCodec.encode(new Feature(DeviceFeatureCodec.SIZE + (long) Math.max(data.length, replyData), flags, data), out);
        Feature f;
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_FEATURE, out, "DEVICE_FEATURE " + what)) {
            f = proxy.decode(m, "DEVICE_FEATURE " + what, DeviceFeatureCodec::decodeReply);
        }
        if (f.data().length != replyData) {
            throw proxy.breakNow("DEVICE_FEATURE " + what + ": the reply carries " + f.data().length + " data bytes, expected " + replyData);
        }
        return f.data();
    }

    private <T> T decode(java.util.function.Supplier<T> s, String what) {
        try {
            return s.get();
        } catch (VfioUserProtocolException e) {
            throw proxy.breakNow("DEVICE_FEATURE " + what + ": bad reply: " + e.getMessage());
        }
    }
}
