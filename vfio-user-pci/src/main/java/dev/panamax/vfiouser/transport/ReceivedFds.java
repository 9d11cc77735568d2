package dev.panamax.vfiouser.transport;

import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;

import java.util.Arrays;

/**
 * The file descriptors that arrived with one message (SCM_RIGHTS), owned by this object until
 * someone {@link #take}s them. {@link #close()} closes every fd nobody took, exactly once.
 * Not thread-safe: one thread handles one message.
 */
public final class ReceivedFds implements AutoCloseable {
    private final int[] fds;
    private final boolean[] taken;
    private boolean closed;

    /** Takes ownership of {@code fds}. */
    public ReceivedFds(int[] fds) {
        this.fds = fds.clone();
        this.taken = new boolean[fds.length];
    }

    /** @return how many fds came */
    public int count() {
        return fds.length;
    }

    /**
     * Transfers fd {@code index} to the caller, who must close it.
     *
     * @throws IllegalStateException when already taken or closed
     * @throws IndexOutOfBoundsException for an index not below {@link #count()}
     */
    public int take(int index) {
        if (closed) {
            throw new IllegalStateException("received fds already closed");
        }
        if (taken[index]) {
            throw new IllegalStateException("received fd " + index + " already taken");
        }
        taken[index] = true;
        return fds[index];
    }

    /** @return fd {@code index} without taking it (it stays owned here), e.g. to mmap then close */
    public int peek(int index) {
        if (closed || taken[index]) {
            throw new IllegalStateException("received fd " + index + " is no longer here");
        }
        return fds[index];
    }

    /** @return the numbers of all fds, for messages (they stay owned here) */
    @Override
    public String toString() {
        return "ReceivedFds" + Arrays.toString(fds);
    }

    /** Closes every fd not taken; later calls do nothing. The first close error is rethrown after all are closed. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        LinuxException first = null;
        for (int i = 0; i < fds.length; i++) {
            if (!taken[i]) {
                taken[i] = true;
                try {
                    Libc.close(fds[i]);
                } catch (LinuxException e) {
                    if (first == null) {
                        first = e;
                    }
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
