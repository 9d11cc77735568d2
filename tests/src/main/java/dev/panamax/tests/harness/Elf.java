package dev.panamax.tests.harness;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Just enough ELF reading to tell a static from a dynamic executable (System V gABI, ELF-64 only). */
final class Elf {
    private static final int PT_INTERP = 3;

    private Elf() {
    }

    /**
     * True when the ELF-64 little-endian executable has a PT_INTERP program header (a dynamic loader).
     *
     * @throws IllegalStateException if the file is not an ELF-64 little-endian file
     */
    static boolean isDynamic(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            var hdr = java.nio.ByteBuffer.allocate(64).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            ch.read(hdr, 0);
            if (hdr.position() < 64 || hdr.getInt(0) != 0x464c457f || hdr.get(4) != 2 || hdr.get(5) != 1) {
                throw new IllegalStateException(file + " is not an ELF-64 little-endian executable");
            }
            long phoff = hdr.getLong(0x20);
            int phentsize = Short.toUnsignedInt(hdr.getShort(0x36));
            int phnum = Short.toUnsignedInt(hdr.getShort(0x38));
            var ph = java.nio.ByteBuffer.allocate(4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < phnum; i++) {
                ph.clear();
                ch.read(ph, phoff + (long) i * phentsize);
                if (ph.getInt(0) == PT_INTERP) {
                    return true;
                }
            }
            return false;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }
}
