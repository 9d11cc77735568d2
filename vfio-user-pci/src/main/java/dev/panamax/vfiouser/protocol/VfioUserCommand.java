package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;

/**
 * The vfio-user command numbers (spec, "Commands"), with the direction in which the command is
 * sent and whether its request or reply may carry file descriptors (SCM_RIGHTS).
 */
public enum VfioUserCommand {
    VERSION(1, true),
    DMA_MAP(2, true),
    DMA_UNMAP(3, true),
    DEVICE_GET_INFO(4, true),
    DEVICE_GET_REGION_INFO(5, true),
    DEVICE_GET_REGION_IO_FDS(6, true),
    DEVICE_GET_IRQ_INFO(7, true),
    DEVICE_SET_IRQS(8, true),
    REGION_READ(9, true),
    REGION_WRITE(10, true),
    DMA_READ(11, false),
    DMA_WRITE(12, false),
    DEVICE_RESET(13, true),
    // 14 was VFIO_USER_DIRTY_PAGES, which the spec no longer lists.
    REGION_WRITE_MULTI(15, true);

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
