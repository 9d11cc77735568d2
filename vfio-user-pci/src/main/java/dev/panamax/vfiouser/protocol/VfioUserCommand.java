package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;

import static dev.panamax.vfiouser.bindings.vfio_user_h.*;

/**
 * The vfio-user commands (spec, "Commands"), numbered by {@code enum vfio_user_command} of vfio-user.h
 * ({@code vfio_user_h.VFIO_USER_VERSION()}, ...; each constant here is that name without {@code VFIO_USER_}), with the direction in which the command is
 * sent and whether its request or reply may carry file descriptors (SCM_RIGHTS).
 */
public enum VfioUserCommand {
    VERSION(VFIO_USER_VERSION(), true),
    DMA_MAP(VFIO_USER_DMA_MAP(), true),
    DMA_UNMAP(VFIO_USER_DMA_UNMAP(), true),
    DEVICE_GET_INFO(VFIO_USER_DEVICE_GET_INFO(), true),
    DEVICE_GET_REGION_INFO(VFIO_USER_DEVICE_GET_REGION_INFO(), true),
    DEVICE_GET_REGION_IO_FDS(VFIO_USER_DEVICE_GET_REGION_IO_FDS(), true),
    DEVICE_GET_IRQ_INFO(VFIO_USER_DEVICE_GET_IRQ_INFO(), true),
    DEVICE_SET_IRQS(VFIO_USER_DEVICE_SET_IRQS(), true),
    REGION_READ(VFIO_USER_REGION_READ(), true),
    REGION_WRITE(VFIO_USER_REGION_WRITE(), true),
    DMA_READ(VFIO_USER_DMA_READ(), false),
    DMA_WRITE(VFIO_USER_DMA_WRITE(), false),
    DEVICE_RESET(VFIO_USER_DEVICE_RESET(), true),
    // 14 was VFIO_USER_DIRTY_PAGES, which the spec no longer lists.
    REGION_WRITE_MULTI(VFIO_USER_REGION_WRITE_MULTI(), true),
    // Migration v2 (libvfio-user's vfio-user.h; the seed spec predates them).
    DEVICE_FEATURE(VFIO_USER_DEVICE_FEATURE(), true),
    MIG_DATA_READ(VFIO_USER_MIG_DATA_READ(), true),
    MIG_DATA_WRITE(VFIO_USER_MIG_DATA_WRITE(), true);

    private final int code;
    private final boolean fromClient;

    VfioUserCommand(int code, boolean fromClient) {
        this.code = code;
        this.fromClient = fromClient;
    }

    /** @return the command number in the header's Command field */
    public int code() {
        return code;
    }

    /** @return true for client -&gt; server requests, false for server -&gt; client (DMA_READ, DMA_WRITE) */
    public boolean fromClient() {
        return fromClient;
    }

    /**
     * The most file descriptors a message of this command may carry.
     * <ul>
     *   <li>DMA_MAP request: one fd for a mappable region ("VFIO_USER_DMA_MAP").</li>
     *   <li>DEVICE_GET_REGION_INFO reply: one fd when the region has the MMAP flag.</li>
     *   <li>DEVICE_GET_REGION_IO_FDS reply: at least one, possibly shared by sub-regions.</li>
     *   <li>DEVICE_SET_IRQS request: one eventfd per sub-index with VFIO_IRQ_SET_DATA_EVENTFD.</li>
     * </ul>
     * Every other message carries none.
     *
     * @param reply true for the reply, false for the request
     * @return 0, 1, or {@link Integer#MAX_VALUE} where only {@code max_msg_fds} bounds the count
     */
    public int maxFds(boolean reply) {
        return switch (this) {
            case DMA_MAP -> reply ? 0 : 1;
            case DEVICE_GET_REGION_INFO -> reply ? 1 : 0;
            case DEVICE_GET_REGION_IO_FDS -> reply ? Integer.MAX_VALUE : 0;
            case DEVICE_SET_IRQS -> reply ? 0 : Integer.MAX_VALUE;
            default -> 0;
        };
    }

    /**
     * @param code the header's Command field
     * @throws VfioUserProtocolException ENOSYS for a number the spec does not define
     */
    public static VfioUserCommand of(int code) {
        for (VfioUserCommand c : values()) {
            if (c.code == code) {
                return c;
            }
        }
        throw new VfioUserProtocolException(Errno.ENOSYS, "unknown vfio-user command " + code);
    }
}
