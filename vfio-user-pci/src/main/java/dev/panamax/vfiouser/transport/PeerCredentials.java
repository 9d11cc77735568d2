package dev.panamax.vfiouser.transport;

/**
 * A UNIX socket peer's credentials, {@code struct ucred} from {@code SO_PEERCRED} (unix(7)), as of its connect.
 *
 * @param pid the peer's process ID
 * @param uid its effective uid
 * @param gid its effective gid
 */
public record PeerCredentials(int pid, int uid, int gid) {
    /** No uid allowed besides our own. */
    public static final int NO_UID = -1;

    /**
     * Whether a peer may be served: one of our own effective uid, or of {@code allowUid}. Any other uid (root
     * included, unless we are root) is refused.
     *
     * @param peerUid  the peer's uid ({@link #uid()})
     * @param ownUid   our effective uid
     * @param allowUid a uid allowed besides ours, or {@link #NO_UID}
     */
    public static boolean allowed(int peerUid, int ownUid, int allowUid) {
        return peerUid == ownUid || (allowUid != NO_UID && peerUid == allowUid);
    }

    /** @return whether this peer may be served by this process, allowing {@code allowUid} besides our uid */
    public boolean allowedBy(int allowUid) {
        return allowed(uid, SocketLibc.geteuid(), allowUid);
    }
}
