package dev.panamax.vfio;

import static dev.panamax.vfio.bindings.vfio_h.*;

/**
 * {@code enum vfio_device_mig_state} of {@code <linux/vfio.h>} (migration v2), and the arcs of its state machine as
 * the kernel's {@code vfio_mig_get_next_state} (drivers/vfio/vfio_main.c) walks them: {@link #nextStep} gives the
 * next state on the way from one state to another, so that a combination transition (RUNNING -&gt; STOP_COPY) goes
 * through its intermediate states (RUNNING -&gt; STOP -&gt; STOP_COPY) in order, as the comment above the enum in
 * vfio.h describes. PRE_COPY (6) and PRE_COPY_P2P (7) came with Linux 6.2, newer than the header the bindings are
 * generated against, and are written out here. The one copy of the enum: kernel VFIO ({@link KernelVfioMigration})
 * and vfio-user (whose DEVICE_FEATURE carries the same {@code struct vfio_device_feature_mig_state}) both use it.
 */
public enum VfioDeviceMigState {
    ERROR(VFIO_DEVICE_STATE_ERROR()),
    STOP(VFIO_DEVICE_STATE_STOP()),
    RUNNING(VFIO_DEVICE_STATE_RUNNING()),
    STOP_COPY(VFIO_DEVICE_STATE_STOP_COPY()),
    RESUMING(VFIO_DEVICE_STATE_RESUMING()),
    RUNNING_P2P(VFIO_DEVICE_STATE_RUNNING_P2P()),
    /** {@code VFIO_DEVICE_STATE_PRE_COPY} (Linux 6.2). */
    PRE_COPY(6),
    /** {@code VFIO_DEVICE_STATE_PRE_COPY_P2P} (Linux 6.2). */
    PRE_COPY_P2P(7);

    /**
     * {@code VFIO_MIGRATION_PRE_COPY} (1 &lt;&lt; 2), a bit of {@code struct vfio_device_feature_migration.flags}, of
     * {@code <linux/vfio.h>} since Linux 6.2; newer than the header the bindings are generated against, so written
     * out here.
     */
    public static final long VFIO_MIGRATION_PRE_COPY = 1L << 2;

    private final int code;

    VfioDeviceMigState(int code) {
        this.code = code;
    }

    /** @return the value in {@code struct vfio_device_feature_mig_state.device_state} */
    public int code() {
        return code;
    }

    /** @throws IllegalArgumentException for a value the enum does not define (the number read unsigned) */
    public static VfioDeviceMigState of(int code) {
        for (VfioDeviceMigState s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        throw new IllegalArgumentException("device_state " + Integer.toUnsignedString(code)
                + " is no enum vfio_device_mig_state value");
    }

    /**
     * Whether a device with migration {@code flags} ({@code VFIO_MIGRATION_STOP_COPY} | {@code _P2P} |
     * {@code _PRE_COPY}) has this state. vfio.h: "RUNNING and ERROR are always supported"; STOP_COPY brings STOP,
     * STOP_COPY and RESUMING; the P2P and PRE_COPY states need their flag besides STOP_COPY, as the kernel's
     * {@code state_flags_table} in {@code vfio_mig_get_next_state} has it.
     */
    public boolean supportedBy(long flags) {
        boolean stopCopy = (flags & VFIO_MIGRATION_STOP_COPY()) != 0;
        boolean p2p = stopCopy && (flags & VFIO_MIGRATION_P2P()) != 0;
        boolean pre = stopCopy && (flags & VFIO_MIGRATION_PRE_COPY) != 0;
        return switch (this) {
            case ERROR, RUNNING -> true;
            case STOP, STOP_COPY, RESUMING -> stopCopy;
            case RUNNING_P2P -> p2p;
            case PRE_COPY -> pre;
            case PRE_COPY_P2P -> pre && p2p;
        };
    }

    /**
     * The next state on the way from {@code this} to {@code target}, for a device with migration {@code flags}: the
     * kernel's {@code vfio_from_fsm_table}, with the P2P states skipped where the device lacks them.
     *
     * @return {@code target} for a direct arc, an intermediate state otherwise, {@code this} when equal to
     *         {@code target}, or {@link #ERROR} when no path exists (from ERROR, to ERROR, or to a state the device
     *         does not support)
     */
    public VfioDeviceMigState nextStep(VfioDeviceMigState target, long flags) {
        if (this == target) {
            return this;
        }
        if (this == ERROR || target == ERROR || !supportedBy(flags) || !target.supportedBy(flags)) {
            return ERROR;
        }
        boolean p2p = RUNNING_P2P.supportedBy(flags);
        VfioDeviceMigState next = switch (this) {
            case STOP -> switch (target) {
                case STOP_COPY, RESUMING, RUNNING_P2P -> target;
                case RUNNING, PRE_COPY, PRE_COPY_P2P -> RUNNING_P2P;
                default -> ERROR;
            };
            case RUNNING -> switch (target) {
                case PRE_COPY, RUNNING_P2P -> target;
                case STOP, STOP_COPY, RESUMING, PRE_COPY_P2P -> RUNNING_P2P;
                default -> ERROR;
            };
            case STOP_COPY -> switch (target) {
                case STOP -> STOP;
                case RUNNING, RESUMING, RUNNING_P2P -> STOP;
                default -> ERROR; // PRE_COPY and PRE_COPY_P2P cannot be re-entered
            };
            case RESUMING -> switch (target) {
                case STOP -> STOP;
                case RUNNING, STOP_COPY, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P -> STOP;
                default -> ERROR;
            };
            case RUNNING_P2P -> switch (target) {
                case RUNNING, STOP, PRE_COPY_P2P -> target;
                case STOP_COPY, RESUMING -> STOP;
                case PRE_COPY -> RUNNING;
                default -> ERROR;
            };
            case PRE_COPY -> switch (target) {
                case RUNNING, PRE_COPY_P2P -> target;
                case STOP_COPY -> p2p ? PRE_COPY_P2P : STOP_COPY;
                case STOP, RESUMING, RUNNING_P2P -> RUNNING;
                default -> ERROR;
            };
            case PRE_COPY_P2P -> switch (target) {
                case PRE_COPY, RUNNING_P2P, STOP_COPY -> target;
                case RUNNING, STOP, RESUMING -> RUNNING_P2P;
                default -> ERROR;
            };
            case ERROR -> ERROR;
        };
        // Without P2P the kernel's table is walked with RUNNING_P2P and PRE_COPY_P2P folded into their neighbours.
        while (next != ERROR && !next.supportedBy(flags)) {
            next = switch (next) {
                case RUNNING_P2P -> this == RUNNING ? STOP : (this == STOP ? RUNNING : target);
                case PRE_COPY_P2P -> this == PRE_COPY ? STOP_COPY : target;
                default -> ERROR;
            };
        }
        return next;
    }
}
