package dev.panamax.vfiouser.client;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;

/** The file descriptors of this process that the client and servers make: sockets, memfds, eventfds (/proc/self/fd). */
final class Fds {
    private Fds() {
    }

    static List<String> open() {
        List<String> out = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            for (Path p : s.toList()) {
                try {
                    String target = Files.readSymbolicLink(p).toString();
                    if (target.startsWith("socket:") || target.startsWith("anon_inode:") || target.contains("memfd:")) {
                        out.add(target);
                    }
                } catch (IOException e) {
                    // closed meanwhile (e.g. the directory's own fd)
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        Collections.sort(out);
        return out;
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
