package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;

/**
 * A vfio-user message broke the protocol: truncated, oversized, inconsistent sizes, bad flags,
 * unknown command, file descriptors where none belong. Carries the errno a server should put in
 * its error reply (spec, "Header": the Error field is a UNIX errno), e.g. {@link Errno#EINVAL}
 * or {@link Errno#E2BIG}, and, when the header could be read, that header so the reply can
 * echo its message ID and command.
 */
public class VfioUserProtocolException extends RuntimeException {
    private final int errno;
    private final VfioUserHeader header;

    /**
     * @param errno   the positive errno to answer with
     * @param message what is wrong, naming the field and value
     */
    public VfioUserProtocolException(int errno, String message) {
        this(errno, message, null);
    }

    /**
     * @param header the offending message's header, or null when it could not be read
     */
    public VfioUserProtocolException(int errno, String message, VfioUserHeader header) {
        super(message + " (" + Errno.name(errno) + ")");
        this.errno = errno;
        this.header = header;
    }

    /** @return the positive errno a server should reply with */
    public int errno() {
        return errno;
    }

    /** @return the header of the offending message, or null when it was not readable */
    public VfioUserHeader header() {
        return header;
    }

    /** @return a copy of this exception that also names the message's header */
    public VfioUserProtocolException withHeader(VfioUserHeader header) {
        VfioUserProtocolException e = new VfioUserProtocolException(errno, rawMessage(), header);
        e.setStackTrace(getStackTrace());
        return e;
    }

    private String rawMessage() {
        String m = getMessage();
        return m.substring(0, m.lastIndexOf(" ("));
    }
}
