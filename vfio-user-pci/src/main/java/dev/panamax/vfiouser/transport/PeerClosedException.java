package dev.panamax.vfiouser.transport;

/**
 * The peer closed the connection (end of stream on receive, EPIPE or ECONNRESET on send). The
 * spec ("Socket Disconnection Behavior") says what each side does next: the client resets the
 * device, the server drops the client's memory and IRQ fds.
 */
public class PeerClosedException extends VfioUserTransportException {
    public PeerClosedException(String message) {
        super(message);
    }
}
