package dev.panamax.vfiouser.server;

/**
 * Serves a trapped region: every REGION_READ / REGION_WRITE of the client (spec,
 * "VFIO_USER_REGION_READ", "VFIO_USER_REGION_WRITE") that falls inside the region reaches these
 * methods on the server's request thread. Offsets and lengths are bytes, already checked against
 * the region's size. A region with ioeventfds ({@link VfioUserDevice.Builder#ioeventfd}) also gets {@link #write}
 * from the server's ioeventfd thread, concurrently with the request thread: its handler must be thread-safe. An
 * exception thrown here becomes an EIO error reply; the server goes on. An {@link Error} drops the client (its
 * state is unknown) with one line.
 */
public interface RegionHandler {
    /**
     * Fills {@code into} with the bytes at {@code offset}.
     *
     * @param offset byte offset in the region
     * @param into   as many bytes as the client asked for
     */
    void read(long offset, byte[] into);

    /**
     * Takes the bytes written at {@code offset}.
     *
     * @param offset byte offset in the region
     * @param data   the bytes the client wrote
     */
    void write(long offset, byte[] data);
}
