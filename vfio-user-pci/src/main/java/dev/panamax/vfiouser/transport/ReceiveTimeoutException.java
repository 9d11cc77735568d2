package dev.panamax.vfiouser.transport;

/** No whole message arrived within the receive timeout. */
public class ReceiveTimeoutException extends VfioUserTransportException {
    public ReceiveTimeoutException(String message) {
        super(message);
    }
}
