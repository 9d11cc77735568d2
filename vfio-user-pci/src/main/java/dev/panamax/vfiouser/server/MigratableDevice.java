package dev.panamax.vfiouser.server;

/**
 * The part of a {@link VfioUserDevice} that migrates (migration v2 of {@code <linux/vfio.h>}, over vfio-user as
 * libvfio-user's {@code lib/migration.c} serves it): the server walks {@code enum vfio_device_mig_state} and calls these
 * on its request thread, one at a time, on the arcs named. The device's state is an opaque byte string the device
 * both writes and reads; it should carry its own version and check it in {@link #loadState}.
 */
public interface MigratableDevice {
    /** The default most bytes of state a device accepts in RESUMING: 64 MiB. */
    long DEFAULT_MAX_STATE_SIZE = 64L << 20;

    /**
     * RUNNING -&gt; STOP: quiesce. On return the device changes no state of its own or outside it (no DMA, no interrupts,
     * no request half done) until {@link #resume}; config space and region accesses are still answered.
     */
    void stop();

    /** STOP -&gt; RUNNING: run again, from the state it stopped in or the one {@link #loadState} gave it. */
    void resume();

    /**
     * STOP -&gt; STOP_COPY: the device's whole state, bytes, read once at the start of STOP_COPY and then served to the
     * client by MIG_DATA_READ. At most {@link #maxStateSize()} bytes.
     */
    byte[] saveState();

    /**
     * RESUMING -&gt; STOP: take the state the client wrote in RESUMING (all of it, as {@link #saveState} made it).
     *
     * @throws IllegalArgumentException when the bytes are no state of this device (truncated, another version, values
     *         out of range); the server answers EINVAL and the device stays in RESUMING
     */
    void loadState(byte[] state);

    /**
     * Whether the device offers PRE_COPY ({@code VFIO_MIGRATION_PRE_COPY}, Linux 6.2's {@code vfio.h}): part of its
     * state can be read while it runs, so that less is left for STOP_COPY. Default: no.
     */
    default boolean offersPreCopy() {
        return false;
    }

    /**
     * RUNNING -&gt; PRE_COPY, the device running: the first part of its migration data, served by MIG_DATA_READ while
     * the device runs on. The data stream goes on in STOP_COPY with {@link #saveState()} (after what PRE_COPY's reads
     * left unread), and {@link #loadState} at the destination gets the whole stream, this part first. Called only when
     * {@link #offersPreCopy()}. With {@link #saveState()}, at most {@link #maxStateSize()} bytes.
     */
    default byte[] preCopyState() {
        throw new UnsupportedOperationException("no PRE_COPY");
    }

    /** @return the most bytes MIG_DATA_WRITE may bring in one RESUMING; more are refused with EFBIG-like E2BIG */
    default long maxStateSize() {
        return DEFAULT_MAX_STATE_SIZE;
    }
}
