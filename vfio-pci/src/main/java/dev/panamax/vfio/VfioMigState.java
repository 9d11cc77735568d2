package dev.panamax.vfio;

import static dev.panamax.vfio.bindings.vfio_h.*;

/**
 * {@code enum vfio_device_mig_state} of {@code <linux/vfio.h>} (migration v2) as this host's header has it (ERROR to
 * RUNNING_P2P), and the arcs of its state machine: {@link #nextStep} gives the next state on the way from one state
 * to another, so that a combination transition (RUNNING -&gt; STOP_COPY) goes through its intermediate states
 * (RUNNING -&gt; STOP -&gt; STOP_COPY) in order, as the comment above the enum in vfio.h and the kernel's
 * {@code vfio_mig_get_next_state} (drivers/vfio/vfio_main.c) describe. A minimal mirror of vfio-user-pci's
 * {@code VfioDeviceMigState} (that module depends on this one, not the reverse), without the PRE_COPY states.
 */
public enum VfioMigState {
    ERROR(VFIO_DEVICE_STATE_ERROR()),
    STOP(VFIO_DEVICE_STATE_STOP()),
    RUNNING(VFIO_DEVICE_STATE_RUNNING()),
    STOP_COPY(VFIO_DEVICE_STATE_STOP_COPY()),
    RESUMING(VFIO_DEVICE_STATE_RESUMING()),
    RUNNING_P2P(VFIO_DEVICE_STATE_RUNNING_P2P());

    private final int code;

    VfioMigState(int code) {
        this.code = code;
    }

    /** @return the value in {@code struct vfio_device_feature_mig_state.device_state} */
    public int code() {
        return code;
    }

    /** @throws IllegalArgumentException for a value the enum does not define (the number read unsigned) */
    public static VfioMigState of(int code) {
        for (VfioMigState s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        throw new IllegalArgumentException("device_state " + Integer.toUnsignedString(code)
                + " is no enum vfio_device_mig_state value");
    }

    /**
     * Whether a device with migration {@code flags} ({@code VFIO_MIGRATION_STOP_COPY} | {@code _P2P}) has this state
     * (vfio.h: "RUNNING and ERROR are always supported", STOP_COPY brings STOP, STOP_COPY and RESUMING, P2P brings
     * RUNNING_P2P).
     */
    public boolean supportedBy(long flags) {
        return switch (this) {
            case ERROR, RUNNING -> true;
            case STOP, STOP_COPY, RESUMING -> (flags & VFIO_MIGRATION_STOP_COPY()) != 0;
            case RUNNING_P2P -> (flags & VFIO_MIGRATION_STOP_COPY()) != 0 && (flags & VFIO_MIGRATION_P2P()) != 0;
        };
    }

    /**
     * The next state on the way from {@code this} to {@code target}, for a device with migration {@code flags}: the
     * kernel's {@code vfio_from_fsm_table}, with RUNNING_P2P skipped where the device lacks it.
     *
     * @return {@code target} for a direct arc, an intermediate state otherwise, {@code this} when equal to
     *         {@code target}, or {@link #ERROR} when no path exists (from ERROR, to ERROR, or to a state the device
     *         does not support)
     */
    public VfioMigState nextStep(VfioMigState target, long flags) {
        if (this == target) {
            return this;
        }
        if (this == ERROR || target == ERROR || !supportedBy(flags) || !target.supportedBy(flags)) {
            return ERROR;
        }
        boolean p2p = RUNNING_P2P.supportedBy(flags);
        return switch (this) {
            case STOP -> target == RUNNING ? (p2p ? RUNNING_P2P : RUNNING) : target;
            case RUNNING -> p2p ? RUNNING_P2P : STOP;
            case STOP_COPY, RESUMING -> STOP;
            case RUNNING_P2P -> target == RUNNING || target == STOP ? target : STOP;
            case ERROR -> ERROR;
        };
    }
}
