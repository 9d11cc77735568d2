package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.OpenFds;

import java.util.List;

/** The file descriptors of this process that the client and servers make: sockets, memfds, eventfds (/proc/self/fd). */
final class Fds {
    private Fds() {
    }

    static List<String> open() {
        return OpenFds.ipcTargets();
    }

    /** After close, the client's receive thread has ended. */
    static void assertNoClientThread() {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("vfio-user-client") && t.isAlive()) {
                throw new AssertionError("receive thread still alive after close: " + t.getName());
            }
        }
    }
}
