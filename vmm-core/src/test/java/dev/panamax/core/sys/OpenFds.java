package dev.panamax.core.sys;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * This process's open file descriptors, from {@code /proc/self/fd}, for tests that check nothing leaks: take a
 * snapshot before, one after, and compare. Shared through vmm-core's test jar.
 */
public final class OpenFds {
    private OpenFds() {
    }

    /**
     * @return each open fd's number and what it is ("socket:[inode]", "anon_inode:[eventfd]", "/memfd:x
     * (deleted)", a path), less the directory fd the listing itself holds while it reads
     */
    public static Map<String, String> byNumber() {
        Map<String, String> fds = new TreeMap<>();
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            for (Path p : s.toList()) {
                try {
                    String target = Files.readSymbolicLink(p).toString();
                    if (!target.matches("/proc/\\d+/fd")) {
                        fds.put(p.getFileName().toString(), target);
                    }
                } catch (IOException e) {
                    // closed meanwhile (e.g. the listing's own fd)
                }
            }
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        return fds;
    }

    /**
     * @return the targets of the sockets, anonymous inodes (eventfds) and memfds, sorted: the kinds a VMM's
     * devices and vfio-user connections make, without the process's other files (jars, logs)
     */
    public static List<String> ipcTargets() {
        List<String> out = new ArrayList<>();
        for (String target : byNumber().values()) {
            if (target.startsWith("socket:") || target.startsWith("anon_inode:") || target.contains("memfd:")) {
                out.add(target);
            }
        }
        Collections.sort(out);
        return out;
    }
}
