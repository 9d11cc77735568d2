package dev.panamax.tests;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Random;

/**
 * A disk image for the passthrough end-to-end tests: seeded random bytes on the host, read whole by the guest
 * (which prints its md5) and written by the guest (a short ASCII pattern at a 512-byte sector), so that the test
 * can say what the guest must have read and what the host file must hold afterwards.
 */
final class GuestDisk {
    private final Path file;
    private final byte[] expected;

    /** Writes {@code bytes} seeded random bytes to {@code file}. */
    GuestDisk(Path file, int bytes, long seed) throws IOException {
        this.file = file;
        this.expected = new byte[bytes];
        new Random(seed).nextBytes(expected);
        Files.write(file, expected);
    }

    Path file() {
        return file;
    }

    /** @return the md5 of what the disk holds now, by the test's account, in hex as {@code md5sum} prints it */
    String md5() throws NoSuchAlgorithmException {
        return HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(expected));
    }

    /**
     * Records that the guest wrote {@code pattern} at {@code sector} (of 512 bytes). A shell {@code dd bs=512} of a
     * short input writes one partial block: only the pattern's bytes change.
     */
    void written(int sector, String pattern) {
        byte[] p = pattern.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(p, 0, expected, sector * 512, p.length);
    }

    /** @return whether the host file holds exactly what the test expects */
    boolean matchesFile() throws IOException {
        return java.util.Arrays.equals(expected, Files.readAllBytes(file));
    }

    /** Puts the file back to what the test expects (before a rerun). */
    void restore() {
        try {
            Files.write(file, expected);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot restore " + file, e);
        }
    }
}
