package dev.panamax.vfiouser.server;

import dev.panamax.core.sys.Errno;
import dev.panamax.vfio.VfioDeviceMigState;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.Feature;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.MigState;
import dev.panamax.vfiouser.protocol.DeviceFeatureCodec.MigrationInfo;
import dev.panamax.vfiouser.protocol.MigDataCodec;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import io.netty.buffer.ByteBuf;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;

/**
 * The server's side of migration v2 for one device (libvfio-user's {@code lib/migration.c} is the model): answers
 * DEVICE_FEATURE for {@code VFIO_DEVICE_FEATURE_MIGRATION} (1) and {@code VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE} (2)
 * as the kernel's {@code vfio_ioctl_device_feature} does, walks {@code enum vfio_device_mig_state} arc by arc
 * ({@link VfioDeviceMigState#nextStep}) calling the {@link MigratableDevice}, serves the saved state by
 * MIG_DATA_READ in STOP_COPY and takes it by MIG_DATA_WRITE in RESUMING, bounded by
 * {@link MigratableDevice#maxStateSize()}. Offers {@code VFIO_MIGRATION_STOP_COPY}, and {@code VFIO_MIGRATION_PRE_COPY}
 * for a device that {@link MigratableDevice#offersPreCopy() offers it} (no P2P): in PRE_COPY, MIG_DATA_READ serves
 * {@link MigratableDevice#preCopyState()} while the device runs, and PRE_COPY -&gt; STOP_COPY stops the device and goes
 * on with what is unread of it followed by {@link MigratableDevice#saveState()}: one stream, as the kernel's data fd.
 * A device with migration also offers DMA logging ({@code VFIO_DEVICE_FEATURE_DMA_LOGGING_START} 6, {@code _STOP} 7,
 * {@code _REPORT} 8; {@link DmaDirtyLog}): the pages its {@link DeviceDma#write}s touch, which the client's own dirty
 * log (KVM's, of the vCPUs' writes) cannot see. Runs on the server's request thread only.
 */
final class DeviceMigration {
    private static final Logger LOG = LoggerFactory.getLogger(DeviceMigration.class);
    private final MigratableDevice device;
    /** The migration flags we offer: {@code VFIO_MIGRATION_STOP_COPY}, with {@code _PRE_COPY} when the device has it. */
    private final long flags;
    private final DeviceDma dma;
    private VfioDeviceMigState state = VfioDeviceMigState.RUNNING;
    /** STOP_COPY: the state being read, and how much of it the client has. */
    private byte[] saved;
    private int readOffset;
    /** RESUMING: the state written so far. */
    private ByteArrayOutputStream incoming;

    /** @param device null for a device without migration: every feature answers ENOTTY */
    DeviceMigration(MigratableDevice device, DeviceDma dma) {
        this.device = device;
        this.dma = dma;
        this.flags = VFIO_MIGRATION_STOP_COPY()
                | (device != null && device.offersPreCopy() ? VfioDeviceMigState.VFIO_MIGRATION_PRE_COPY : 0);
    }

    /**
     * DEVICE_FEATURE.
     *
     * @param maxReplyData the most bytes a reply's payload may have: the client's max_data_xfer_size
     * @throws VfioUserProtocolException ENOTTY for a feature we lack (every one, for a device without migration),
     *         EINVAL for an operation the feature lacks, an argsz too small for the feature's data, a state no arc leads to,
     *         bad DMA logging parameters; E2BIG for a DMA logging report above {@code maxReplyData}; EBUSY for a
     *         DMA logging START while logging with other parameters
     */
    void feature(ByteBuf in, ByteBuf out, long maxReplyData) {
        Feature f = DeviceFeatureCodec.decodeRequest(in);
        int index = f.feature();
        int supported;
        int minData;
        if (device != null && index == VFIO_DEVICE_FEATURE_MIGRATION()) {
            supported = VFIO_DEVICE_FEATURE_GET();
            minData = DeviceFeatureCodec.MIGRATION_SIZE;
        } else if (device != null && index == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE()) {
            supported = VFIO_DEVICE_FEATURE_GET() | VFIO_DEVICE_FEATURE_SET();
            minData = DeviceFeatureCodec.MIG_STATE_SIZE;
        } else if (device != null && index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_START) {
            supported = VFIO_DEVICE_FEATURE_SET();
            minData = DeviceFeatureCodec.DMA_LOGGING_CONTROL_SIZE;
        } else if (device != null && index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP) {
            supported = VFIO_DEVICE_FEATURE_SET();
            minData = 0;
        } else if (device != null && index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
            supported = VFIO_DEVICE_FEATURE_GET();
            minData = DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE;
        } else {
            throw new VfioUserProtocolException(Errno.ENOTTY, "DEVICE_FEATURE " + index + " is not supported");
        }
        // vfio_check_feature: an operation the feature lacks is EINVAL, a probe ends here, then argsz must hold the data.
        int ops = f.flags() & (VFIO_DEVICE_FEATURE_GET() | VFIO_DEVICE_FEATURE_SET());
        if ((ops & ~supported) != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_FEATURE " + index + " has no "
                    + (f.set() ? "SET" : "GET"));
        }
        if (f.probe()) {
            DeviceFeatureCodec.encode(Feature.of(f.flags(), new byte[0]), out);
            return;
        }
        if (ops == 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_FEATURE " + index + " without GET, SET or PROBE");
        }
        if (f.argsz() < DeviceFeatureCodec.SIZE + (long) minData) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_FEATURE " + index + " argsz " + f.argsz()
                    + " is below " + (DeviceFeatureCodec.SIZE + minData));
        }
        byte[] data;
        if (index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_START) {
            DeviceFeatureCodec.DmaLoggingControl c = DeviceFeatureCodec.decodeDmaLoggingControl(f.data());
            dma.startLogging(c.pageSize(), c.ranges());
            LOG.debug("vfio-user DMA logging started, {}-byte pages, {} ranges", c.pageSize(), c.ranges().size());
            data = new byte[0];
        } else if (index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP) {
            dma.stopLogging();
            data = new byte[0];
        } else if (index == DeviceFeatureCodec.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
            DeviceFeatureCodec.DmaLoggingReport r = DeviceFeatureCodec.decodeDmaLoggingReport(f.data());
            // The reply holds the struct and the bitmap: the request's argsz must offer room for both.
            long need = DeviceFeatureCodec.SIZE + DeviceFeatureCodec.DMA_LOGGING_REPORT_SIZE + r.bitmapBytes();
            if (f.argsz() < need) {
                throw new VfioUserProtocolException(Errno.EINVAL, "DMA logging report: argsz " + f.argsz()
                        + " has no room for the " + r.bitmapBytes() + "-byte bitmap (" + need + " bytes)");
            }
            if (need > maxReplyData) {
                throw new VfioUserProtocolException(Errno.E2BIG, "DMA logging report: " + need + " bytes with the "
                        + r.bitmapBytes() + "-byte bitmap pass the client's max_data_xfer_size of " + maxReplyData);
            }
            data = DeviceFeatureCodec.encodeDmaLoggingReport(r, dma.report(r));
        } else if (index == VFIO_DEVICE_FEATURE_MIGRATION()) {
            data = DeviceFeatureCodec.encodeMigrationInfo(new MigrationInfo(flags));
        } else if (f.get()) {
            data = DeviceFeatureCodec.encodeMigState(new MigState(state.code(), -1));
        } else {
            setState(DeviceFeatureCodec.decodeMigState(f.data()).state());
            data = DeviceFeatureCodec.encodeMigState(new MigState(state.code(), -1));
        }
        DeviceFeatureCodec.encode(Feature.of(f.flags(), data), out);
    }

    /**
     * Walks to {@code target}: the whole path is checked before the first arc is taken, so a refused transition
     * leaves the state as it was; a device callback that fails leaves it at the last state reached.
     */
    private void setState(VfioDeviceMigState target) {
        List<VfioDeviceMigState> path = new ArrayList<>();
        for (VfioDeviceMigState at = state; at != target; ) {
            at = at.nextStep(target, flags);
            if (at == VfioDeviceMigState.ERROR || path.size() > 8) {
                throw new VfioUserProtocolException(Errno.EINVAL, "no migration state transition from " + state + " to " + target);
            }
            path.add(at);
        }
        for (VfioDeviceMigState next : path) {
            arc(state, next);
            LOG.debug("vfio-user migration: {} -> {}", state, next);
            state = next;
        }
    }

    private void arc(VfioDeviceMigState from, VfioDeviceMigState to) {
        switch (from) {
            case RUNNING -> {
                if (to == VfioDeviceMigState.PRE_COPY) { // the device runs on; its first data is readable now
                    saved = bounded(device.preCopyState(), 0);
                    readOffset = 0;
                } else {
                    device.stop(); // RUNNING -> STOP (no P2P)
                }
            }
            case PRE_COPY -> {
                if (to == VfioDeviceMigState.STOP_COPY) { // the stream goes on: what PRE_COPY left unread, then the rest
                    device.stop();
                    byte[] unread = Arrays.copyOfRange(saved, readOffset, saved.length);
                    byte[] rest = device.saveState();
                    byte[] all = Arrays.copyOf(unread, unread.length + rest.length);
                    System.arraycopy(rest, 0, all, unread.length, rest.length);
                    saved = bounded(all, readOffset);
                } else {
                    saved = null; // PRE_COPY -> RUNNING: the session ends, the device never stopped
                }
                readOffset = 0;
            }
            case STOP -> {
                switch (to) {
                    case RUNNING -> device.resume();
                    case STOP_COPY -> {
                        saved = bounded(device.saveState(), 0);
                        readOffset = 0;
                    }
                    case RESUMING -> incoming = new ByteArrayOutputStream();
                    default -> throw new IllegalStateException("no arc STOP -> " + to);
                }
            }
            case STOP_COPY -> saved = null; // "The STOP_COPY arc will terminate a data transfer session."
            case RESUMING -> {
                try {
                    device.loadState(incoming.toByteArray());
                } catch (IllegalArgumentException e) {
                    throw new VfioUserProtocolException(Errno.EINVAL, "the device refused the migration data: " + e.getMessage());
                }
                incoming = null;
            }
            default -> throw new IllegalStateException("no arc " + from + " -> " + to);
        }
    }

    /** @return {@code data}, checked: with {@code before} bytes of the stream already read, within the device's maximum */
    private byte[] bounded(byte[] data, long before) {
        if (data.length + before > device.maxStateSize()) {
            throw new IllegalStateException("the device saved " + (data.length + before) + " bytes, above its maximum of "
                    + device.maxStateSize());
        }
        return data;
    }

    /**
     * MIG_DATA_READ: the next at most {@code min(size, clientMaxXfer)} bytes of the saved state; 0 at its end (in
     * PRE_COPY: at the end of what there is now).
     *
     * @throws VfioUserProtocolException EINVAL outside PRE_COPY and STOP_COPY or for a malformed request, E2BIG above
     *         {@code clientMaxXfer}
     */
    void read(ByteBuf in, ByteBuf out, long clientMaxXfer) {
        MigDataCodec.ReadRequest r = MigDataCodec.decodeReadRequest(in, clientMaxXfer);
        if (state != VfioDeviceMigState.STOP_COPY && state != VfioDeviceMigState.PRE_COPY) {
            throw new VfioUserProtocolException(Errno.EINVAL, "MIG_DATA_READ in " + state + ", not PRE_COPY or STOP_COPY");
        }
        int n = (int) Math.min(r.size(), saved.length - readOffset);
        MigDataCodec.encode(MigDataCodec.Data.of(Arrays.copyOfRange(saved, readOffset, readOffset + n)), out);
        readOffset += n;
    }

    /**
     * MIG_DATA_WRITE: appends to the state being resumed.
     *
     * @throws VfioUserProtocolException EINVAL outside RESUMING or for a malformed request, E2BIG when the data passes
     *         {@code maxXfer} or the total passes {@link MigratableDevice#maxStateSize()} (the data is dropped)
     */
    void write(ByteBuf in, long maxXfer) {
        MigDataCodec.Data d = MigDataCodec.decodeData(in, maxXfer, "MIG_DATA_WRITE");
        if (state != VfioDeviceMigState.RESUMING) {
            throw new VfioUserProtocolException(Errno.EINVAL, "MIG_DATA_WRITE in " + (device == null ? "a device without migration" : state) + ", not RESUMING");
        }
        if ((long) incoming.size() + d.data().length > device.maxStateSize()) {
            throw new VfioUserProtocolException(Errno.E2BIG, "MIG_DATA_WRITE of " + d.data().length + " bytes after "
                    + incoming.size() + " passes the device's maximum state of " + device.maxStateSize() + " bytes");
        }
        incoming.writeBytes(d.data());
    }

    /** DEVICE_RESET: the device is RUNNING afterwards (vfio.h: reset returns the state machine to RUNNING). */
    void reset() {
        if (device == null || state == VfioDeviceMigState.RUNNING) {
            return;
        }
        boolean stopped = state != VfioDeviceMigState.PRE_COPY; // in PRE_COPY the device runs
        saved = null;
        incoming = null;
        state = VfioDeviceMigState.RUNNING;
        if (stopped) {
            device.resume();
        }
    }
}
