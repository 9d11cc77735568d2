package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.Feature;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.MigState;
import dev.panamax.vfiouser.protocol.MigDataCodec;
import dev.panamax.vfiouser.protocol.VfioDeviceMigState;
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
        return decode(() -> VfioDeviceMigState.of(DeviceFeatureCodec.decodeMigState(data).deviceState()), "GET MIG_DEVICE_STATE");
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
        VfioDeviceMigState now = decode(() -> VfioDeviceMigState.of(DeviceFeatureCodec.decodeMigState(data).deviceState()), what);
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
