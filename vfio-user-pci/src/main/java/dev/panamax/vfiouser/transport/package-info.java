/**
 * The vfio-user transport: an {@code AF_UNIX} stream socket through FFM
 * ({@link dev.panamax.vfiouser.transport.UnixSocket}, system calls in
 * {@link dev.panamax.vfiouser.transport.SocketLibc}), file descriptors passed as SCM_RIGHTS, and
 * whole messages with their fds ({@link dev.panamax.vfiouser.transport.MessageChannel},
 * {@link dev.panamax.vfiouser.transport.ReceivedMessage}, {@link dev.panamax.vfiouser.transport.ReceivedFds}).
 */
package dev.panamax.vfiouser.transport;
