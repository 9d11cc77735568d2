package dev.panamax.core.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The soaks' footprint: sampling sees a memfd and a thread come and go; bounds and the report lines. */
class FootprintTest {
    @TempDir
    Path dir;

    @Test
    void seesAMemfdAndAThreadComeAndGo() throws Exception {
        Footprint before = Footprint.sample();
        assertTrue(before.fds() >= 3 && before.threads() >= 1 && before.rssKiB() > 1024, before.toString());
        Thread t;
        var release = new java.util.concurrent.CountDownLatch(1);
        try (MemFd m = new MemFd("footprint-test", 4096)) {
            t = Thread.ofPlatform().name("footprint-test").start(() -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            Footprint during = Footprint.sample();
            assertEquals(before.memfds() + 1, during.memfds(), during.toString());
            assertTrue(during.fds() >= before.fds() + 1, during.toString());
            assertTrue(during.threads() >= before.threads() + 1, during.toString());
            release.countDown();
            t.join(5000);
        }
        Footprint after = Footprint.sample();
        assertEquals(before.memfds(), after.memfds());
        assertEquals(List.of(), before.exceeded(after, Footprint.Bounds.SOAK));
    }

    @Test
    void boundsNameWhatBroke() {
        Footprint before = new Footprint(12, 9, 0, 61 << 10);
        assertEquals(List.of(), before.exceeded(new Footprint(14, 11, 2, (61 + 32) << 10), Footprint.Bounds.SOAK));
        assertEquals(List.of("fds 12->15 (bound +2)", "threads 9->12 (bound +2)", "memfds 0->3 (bound +2)",
                        "rss 61->94 MiB (bound +32 MiB)"),
                before.exceeded(new Footprint(15, 12, 3, ((61 + 32) << 10) + 1024), Footprint.Bounds.SOAK));
        // Fewer is never a breach.
        assertEquals(List.of(), before.exceeded(new Footprint(3, 2, 0, 1), Footprint.Bounds.SOAK));
        assertEquals("fds 12->14, threads 9->9, memfds 0->1, rss 61->63 MiB", before.change(new Footprint(14, 9, 1, 63 << 10)));
    }

    @Test
    void aLineReadsBack() {
        Footprint f = new Footprint(17, 8, 2, 123456);
        assertEquals(f, Footprint.parse("server: " + f.line()));
        assertThrows(IllegalArgumentException.class, () -> Footprint.parse("footprint fds=1"));
    }

    @Test
    void readsVmRssInKiB() throws Exception {
        Path status = dir.resolve("status");
        Files.writeString(status, "Name:\tjava\nVmHWM:\t  70000 kB\nVmRSS:\t   62816 kB\nThreads:\t20\n");
        assertEquals(62816, Footprint.rssKiB(status));
        Files.writeString(status, "Name:\tjava\n");
        assertThrows(IllegalStateException.class, () -> Footprint.rssKiB(status));
    }
}
