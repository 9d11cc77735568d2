package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;

/**
 * A vfio-user message broke the protocol: truncated, oversized, inconsistent sizes, bad flags,
 * unknown command, file descriptors where none belong. Carries the errno a server should put in
 * its error reply (spec, "Header": the Error field is a UNIX errno), e.g. {@link Errno#EINVAL}
 * or {@link Errno#E2BIG}, and, when the header could be read, the message ID and command number
 * so that the reply can echo them.
 */
public class VfioUserProtocolException extends RuntimeException {
    private final int errno;
    private final String detail;
    private final int messageId;
    private final int command;

    /**
     * @param errno   the positive errno to answer with
     * @param message what is wrong, naming the field and value
     */
    public VfioUserProtocolException(int errno, String message) {
        this(errno, message, -1, -1);
    }

    private VfioUserProtocolException(int errno, String message, int messageId, int command) {
        super(message + " (" + Errno.name(errno) + ")");
        this.errno = errno;
        this.detail = message;
        this.messageId = messageId;
        this.command = command;
    }

    /** @return the positive errno a server should reply with */
    public int errno() {
        return errno;
    }

    /** @return the offending message's ID, or -1 when its header was not readable */
    public int messageId() {
        return messageId;
    }

    /** @return the offending message's Command field (possibly a number the spec does not define), or -1 */
    public int command() {
        return command;
    }

    /** @return this failure, naming the message it happened in */
    public VfioUserProtocolException at(int messageId, int command) {
        VfioUserProtocolException e = new VfioUserProtocolException(errno, detail, messageId, command);
        e.setStackTrace(getStackTrace());
        return e;
    }
}
