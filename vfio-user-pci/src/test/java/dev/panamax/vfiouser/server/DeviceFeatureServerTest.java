package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec;
import dev.panamax.vfiouser.protocol.MigDataCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.transport.UnixSocket;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;
import static dev.panamax.vfiouser.server.TestClient.payload;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The server's DEVICE_FEATURE and MIG_DATA answers, request by request over a socketpair with {@link TestClient}:
 * the kernel's {@code vfio_ioctl_device_feature} errnos (ENOTTY for a feature it lacks, EINVAL for an operation the
 * feature lacks or a short argsz), PROBE, GET, and MIG_DATA chunks bounded by the request.
 */
@Timeout(20)
class DeviceFeatureServerTest {
    static final int GET = VFIO_DEVICE_FEATURE_GET();
    static final int SET = VFIO_DEVICE_FEATURE_SET();
    static final int PROBE = VFIO_DEVICE_FEATURE_PROBE();

    VfioUserServer server;
    TestClient client;
    byte[] state = new byte[10_000];

    /** PRE_COPY's first data, for {@link #start(boolean, boolean)} with PRE_COPY. */
    byte[] early = new byte[5000];
    final java.util.List<String> calls = new java.util.ArrayList<>();

    void start(boolean migratable) {
        start(migratable, false);
    }

    void start(boolean migratable, boolean preCopy) {
        VfioUserDevice.Builder b = VfioUserDevice.builder(VfioUserDevice.pciFunction("feat", 0x1af4, 0x10ff, 0xff0000, 0));
        if (migratable) {
            b.migration(new MigratableDevice() {
                public void stop() { calls.add("stop"); }
                public void resume() { calls.add("resume"); }
                public byte[] saveState() { calls.add("save"); return state; }
                public void loadState(byte[] s) { }
                public boolean offersPreCopy() { return preCopy; }
                public byte[] preCopyState() { calls.add("pre"); return early; }
            });
        }
        UnixSocket[] pair = UnixSocket.pair();
        server = new VfioUserServer(pair[1], b.build());
        client = new TestClient(pair[0], 0x100000, 0x1000);
        server.start();
        client.version();
    }

    @AfterEach
    void tearDown() throws Exception {
        client.close();
        server.close();
    }

    int featureError(long argsz, int flags, byte[] data) {
        return client.error(VfioUserCommand.DEVICE_FEATURE, payload(o -> DeviceFeatureCodec.encode(new DeviceFeatureCodec.Feature(argsz, flags, data), o)));
    }

    DeviceFeatureCodec.Feature feature(long argsz, int flags, byte[] data) {
        return DeviceFeatureCodec.decodeReply(client.ok(VfioUserCommand.DEVICE_FEATURE,
                payload(o -> DeviceFeatureCodec.encode(new DeviceFeatureCodec.Feature(argsz, flags, data), o))));
    }

    @Test
    void kernelErrnos() {
        start(true);
        assertEquals(Errno.ENOTTY, featureError(16, GET | 0, new byte[0]), "PCI_VF_TOKEN");
        assertEquals(Errno.ENOTTY, featureError(16, GET | 9, new byte[0]), "MIG_DATA_SIZE: not offered");
        assertEquals(Errno.EINVAL, featureError(16, GET | 6, new byte[0]), "DMA_LOGGING_START has no GET");
        assertEquals(Errno.EINVAL, featureError(16, SET | 8, new byte[0]), "DMA_LOGGING_REPORT has no SET");
        assertEquals(Errno.EINVAL, featureError(8 + 23, GET | 8, new byte[23]), "a report one byte short");
        assertEquals(Errno.EINVAL, featureError(8 + 24 + 8, GET | 8, DeviceFeatureCodec.encodeDmaLoggingReport(
                new DeviceFeatureCodec.DmaLoggingReport(0, 4096, 4096), new byte[0])), "a report while logging is off");
        assertEquals(Errno.EINVAL, featureError(8 + 16, SET | 6, DeviceFeatureCodec.encodeDmaLoggingControl(
                new DeviceFeatureCodec.DmaLoggingControl(4096, java.util.List.of()))), "START of every DMA_MAP range, with none");
        assertEquals(0, feature(8, PROBE | SET | 6, new byte[0]).data().length, "DMA_LOGGING_START is offered");
        assertEquals(0, feature(8, SET | 7, new byte[0]).data().length, "STOP while off: nothing to do");
        assertEquals(Errno.ENOTTY, featureError(8, PROBE | 0xFFFF, new byte[0]));
        assertEquals(Errno.EINVAL, featureError(16, SET | 1, new byte[8]), "MIGRATION has no SET");
        assertEquals(Errno.EINVAL, featureError(8, PROBE | SET | 1, new byte[0]), "probing SET on MIGRATION");
        assertEquals(Errno.EINVAL, featureError(15, GET | 1, new byte[0]), "argsz one byte short");
        assertEquals(Errno.EINVAL, featureError(12, SET | 2, new byte[4]), "SET with 4 data bytes");
        assertEquals(Errno.EINVAL, featureError(16, 2, new byte[0]), "neither GET, SET nor PROBE");
        assertEquals(Errno.EINVAL, featureError(16, SET | 2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(99, -1))));
        assertEquals(0, feature(8, PROBE | GET | SET | 2, new byte[0]).data().length);
        assertEquals(0, feature(8, PROBE | 1, new byte[0]).data().length);
        DeviceFeatureCodec.Feature f = feature(16, GET | 1, new byte[0]);
        assertEquals(VFIO_MIGRATION_STOP_COPY(), DeviceFeatureCodec.decodeMigrationInfo(f.data()).flags());
        assertEquals(16, f.argsz());
        assertEquals(GET | 1, f.flags());
        // argsz larger than needed is fine (unsigned, near 2^32).
        assertEquals(VFIO_DEVICE_STATE_RUNNING(), DeviceFeatureCodec.decodeMigState(feature(0xFFFF_FFFFL, GET | 2, new byte[0]).data()).deviceState());
    }

    @Test
    void noMigrationNoFeatures() {
        start(false);
        assertEquals(Errno.ENOTTY, featureError(16, GET | 1, new byte[0]));
        assertEquals(Errno.ENOTTY, featureError(16, GET | 2, new byte[0]));
        assertEquals(Errno.ENOTTY, featureError(8, PROBE | 1, new byte[0]));
        assertEquals(Errno.ENOTTY, featureError(8, PROBE | SET | 6, new byte[0]), "no migration, no DMA logging");
    }

    /** One MIG_DATA_READ of at most {@code size} bytes. */
    byte[] migRead(int size) {
        return MigDataCodec.decodeData(client.ok(VfioUserCommand.MIG_DATA_READ,
                payload(o -> MigDataCodec.encode(MigDataCodec.ReadRequest.of(size), o))), size, "t").data();
    }

    void setState(int state) {
        feature(16, SET | 2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(state, -1)));
    }

    /**
     * PRE_COPY: offered only by a device that has it; the first data is read while the device runs; PRE_COPY ->
     * STOP_COPY stops it and the stream goes on with what was left unread, then saveState's bytes; PRE_COPY ->
     * RUNNING ends the session without a stop or resume; a reset in PRE_COPY does not resume a running device.
     */
    @Test
    void preCopyDataIsReadWhileRunningAndTheStreamGoesOnInStopCopy() {
        start(true, true);
        for (int i = 0; i < early.length; i++) {
            early[i] = (byte) (i * 7);
        }
        for (int i = 0; i < state.length; i++) {
            state[i] = (byte) i;
        }
        assertEquals(VFIO_MIGRATION_STOP_COPY() | dev.panamax.vfio.VfioDeviceMigState.VFIO_MIGRATION_PRE_COPY,
                DeviceFeatureCodec.decodeMigrationInfo(feature(16, GET | 1, new byte[0]).data()).flags());
        setState(6); // VFIO_DEVICE_STATE_PRE_COPY
        assertEquals(java.util.List.of("pre"), calls, "the device runs on in PRE_COPY");
        byte[] first = migRead(3000);
        assertEquals(3000, first.length);
        setState(VFIO_DEVICE_STATE_STOP_COPY());
        assertEquals(java.util.List.of("pre", "stop", "save"), calls);
        java.io.ByteArrayOutputStream rest = new java.io.ByteArrayOutputStream();
        for (byte[] d = migRead(4096); d.length > 0; d = migRead(4096)) {
            rest.writeBytes(d);
        }
        java.io.ByteArrayOutputStream want = new java.io.ByteArrayOutputStream();
        want.write(early, 3000, early.length - 3000);
        want.writeBytes(state);
        assertArrayEquals(want.toByteArray(), rest.toByteArray(), "PRE_COPY's unread bytes, then saveState's");

        setState(VFIO_DEVICE_STATE_RUNNING());
        calls.clear();
        setState(6);
        assertArrayEquals(early, readToEnd(), "all of PRE_COPY's data, then 0: nothing more for now");
        assertEquals(0, migRead(100).length, "still nothing");
        setState(VFIO_DEVICE_STATE_RUNNING());
        assertEquals(java.util.List.of("pre"), calls, "PRE_COPY -> RUNNING neither stops nor resumes");
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.MIG_DATA_READ,
                payload(o -> MigDataCodec.encode(MigDataCodec.ReadRequest.of(100), o))), "no reads in RUNNING");
        setState(6);
        client.ok(VfioUserCommand.DEVICE_RESET, payload(o -> { }));
        assertEquals(java.util.List.of("pre", "pre"), calls, "a reset in PRE_COPY does not resume a running device");
    }

    byte[] readToEnd() {
        java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
        for (byte[] d = migRead(4096); d.length > 0; d = migRead(4096)) {
            all.writeBytes(d);
        }
        return all.toByteArray();
    }

    @Test
    void aDeviceWithoutPreCopyRefusesIt() {
        start(true);
        assertEquals(VFIO_MIGRATION_STOP_COPY(), DeviceFeatureCodec.decodeMigrationInfo(feature(16, GET | 1, new byte[0]).data()).flags());
        assertEquals(Errno.EINVAL, featureError(16, SET | 2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(6, -1))));
        assertEquals(java.util.List.of(), calls);
    }

    @Test
    void migDataReadChunksEndWithZero() {
        start(true);
        for (int i = 0; i < state.length; i++) {
            state[i] = (byte) i;
        }
        feature(16, SET | 2, DeviceFeatureCodec.encodeMigState(new DeviceFeatureCodec.MigState(VFIO_DEVICE_STATE_STOP_COPY(), -1)));
        byte[] got = new byte[state.length];
        int at = 0;
        while (true) {
            MigDataCodec.Data d = MigDataCodec.decodeData(client.ok(VfioUserCommand.MIG_DATA_READ,
                    payload(o -> MigDataCodec.encode(MigDataCodec.ReadRequest.of(3000), o))), 3000, "t");
            if (d.data().length == 0) {
                break;
            }
            assertTrue(d.data().length <= 3000);
            System.arraycopy(d.data(), 0, got, at, d.data().length);
            at += d.data().length;
        }
        assertEquals(state.length, at);
        assertArrayEquals(state, got);
        // A read larger than the client's max_data_xfer_size (1 MiB by default): E2BIG; argsz short of 8 + size: EINVAL.
        assertEquals(Errno.E2BIG, client.error(VfioUserCommand.MIG_DATA_READ, payload(o -> MigDataCodec.encode(MigDataCodec.ReadRequest.of((1 << 20) + 1), o))));
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.MIG_DATA_READ, payload(o -> MigDataCodec.encode(new MigDataCodec.ReadRequest(8, 1), o))));
        // A MIG_DATA_WRITE above max_data_xfer_size is refused before anything is kept.
        assertEquals(Errno.EINVAL, client.error(VfioUserCommand.MIG_DATA_WRITE, payload(o -> MigDataCodec.encode(MigDataCodec.Data.of(new byte[1]), o))), "not RESUMING");
    }
}
