package dev.panamax.vfiouser.transport;

/** A message was not sent in time: the peer does not read its socket. The stream may be out of step. */
public final class SendTimeoutException extends VfioUserTransportException {
    public SendTimeoutException(String message) {
        super(message);
    }
}
