package dev.panamax.firmware;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * An initrd (initial RAM disk) to place in guest memory: its size in bytes, and how to write it there.
 * {@link #file} reads a file straight into guest RAM, so that an initrd of tens of MiB never passes through the
 * Java heap, where it would stay in the VMM's resident memory for the VM's life.
 */
public interface Initrd {
    /** @return the size in bytes */
    long size();

    /**
     * Writes the initrd into {@code destination}: {@link #size()} bytes of guest RAM (host-virtual addresses).
     *
     * @throws BootException if it cannot be read whole
     */
    void copyTo(MemorySegment destination) throws BootException;

    /** @return an initrd of these bytes (not copied) */
    static Initrd of(byte[] bytes) {
        return new Initrd() {
            @Override
            public long size() {
                return bytes.length;
            }

            @Override
            public void copyTo(MemorySegment destination) {
                MemorySegment.copy(bytes, 0, destination, ValueLayout.JAVA_BYTE, 0, bytes.length);
            }
        };
    }

    /**
     * @return the initrd in {@code path}, read when {@link #copyTo} is called; its size is taken now
     * @throws BootException if the file does not exist, is not a regular file, or is 2 GiB or more (one
     *                       {@code ByteBuffer} over guest RAM; low RAM ends below 3 GiB anyway)
     */
    static Initrd file(Path path) throws BootException {
        String name = String.valueOf(path.getFileName());
        if (!Files.isRegularFile(path)) {
            throw new BootException("initrd " + path + ": no such file");
        }
        long size;
        try {
            size = Files.size(path);
        } catch (IOException e) {
            throw new BootException(name + ": cannot read initrd (" + e + ")", e);
        }
        if (size >= Integer.MAX_VALUE - 8) {
            throw new BootException(name + ": initrd of " + size + " bytes is too big (at most 2 GiB)");
        }
        return new Initrd() {
            @Override
            public long size() {
                return size;
            }

            @Override
            public void copyTo(MemorySegment destination) throws BootException {
                try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
                    ByteBuffer buffer = destination.asByteBuffer();
                    while (buffer.hasRemaining()) {
                        if (ch.read(buffer) < 0) {
                            throw new BootException(name + ": initrd ends at byte " + buffer.position() + " of "
                                    + size + " (did it change while Panamax read it?)");
                        }
                    }
                } catch (IOException e) {
                    throw new BootException(name + ": cannot read initrd (" + e + ")", e);
                }
            }
        };
    }
}
