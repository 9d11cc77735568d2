package dev.panamax.vfiouser.transport;

/** The vfio-user socket failed: a system call error, a timeout, or the peer went away. */
public class VfioUserTransportException extends RuntimeException {
    public VfioUserTransportException(String message) {
        super(message);
    }

    public VfioUserTransportException(String message, Throwable cause) {
        super(message, cause);
    }
}
