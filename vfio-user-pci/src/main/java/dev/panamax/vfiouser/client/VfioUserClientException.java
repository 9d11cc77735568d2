package dev.panamax.vfiouser.client;

/**
 * A vfio-user request failed: the server answered with an error reply (its errno in {@link #errno()}), or the
 * request could not be made. The message names the socket and the operation.
 */
public class VfioUserClientException extends RuntimeException {
    private final int errno;

    /**
     * @param errno   the errno of the server's error reply, or 0 when there was none
     * @param message what failed, naming the socket and the operation
     */
    public VfioUserClientException(int errno, String message) {
        super(message);
        this.errno = errno;
    }

    public VfioUserClientException(String message, Throwable cause) {
        super(message, cause);
        this.errno = 0;
    }

    /** @return the errno of the server's error reply, or 0 */
    public int errno() {
        return errno;
    }
}
