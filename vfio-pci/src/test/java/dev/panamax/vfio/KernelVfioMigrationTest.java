package dev.panamax.vfio;

import dev.panamax.core.sys.Libc;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link KernelVfioMigration}'s data-fd streaming over a memfd (the arcs it walks: {@link VfioDeviceMigStateTest}). The
 * ioctls themselves need a device whose driver offers migration (no /dev/vfio here); the probe's "not supported" path
 * is taken on a memfd (ENOTTY).
 */
class KernelVfioMigrationTest {
    @Test
    void probeOfAFileWithoutTheIoctlIsNoMigration() {
        int fd = Libc.memfdCreate("not-a-vfio-device", Libc.MFD_CLOEXEC);
        try {
            assertNull(KernelVfioMigration.probe("memfd", fd));
        } finally {
            Libc.close(fd);
        }
    }

    @Test
    void dataStreamsRoundTripInChunksAndReadIsBounded() {
        byte[] data = new byte[KernelVfioMigration.CHUNK * 2 + 12345];
        new Random(17).nextBytes(data);
        int fd = Libc.memfdCreate("mig-data", Libc.MFD_CLOEXEC);
        try {
            KernelVfioMigration.writeStream(fd, data, "test");
            assertEquals(0, Libc.lseekRaw(fd, 0, 0));
            assertArrayEquals(data, KernelVfioMigration.readStream(fd, data.length, "test"));
            assertEquals(0, Libc.lseekRaw(fd, 0, 0));
            var e = assertThrows(IllegalStateException.class, () -> KernelVfioMigration.readStream(fd, data.length - 1, "test"));
            assertTrue(e.getMessage().contains("more than " + (data.length - 1)), e.getMessage());
            KernelVfioMigration.writeStream(fd, new byte[0], "empty");
        } finally {
            Libc.close(fd);
        }
    }
}
