package dev.panamax.vfiouser.client;

/**
 * The vfio-user server is gone or broke the protocol, and the client has given up on it
 * ({@link VfioUserClient#isBroken()}); the message names the socket and what happened first.
 * Info calls, {@code mmap} and connecting throw it; region reads return all-ones instead and writes are dropped.
 */
public final class VfioUserDeviceBrokenException extends VfioUserClientException {
    public VfioUserDeviceBrokenException(String message) {
        super(0, message);
    }
}
