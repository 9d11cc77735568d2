package dev.panamax.images;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A built guest image: a directory holding {@value #KERNEL} (the bzImage from the kernel package's
 * /boot/vmlinuz-VER), {@value #INITRAMFS} (gzip-compressed newc cpio, see {@link Initramfs}) and
 * {@value #MANIFEST} (see {@link ImageManifest}). Built by {@link ImageBuilder}.
 *
 * @param dir       the image directory
 * @param kernel    dir/vmlinuz
 * @param initramfs dir/initramfs.cpio.gz
 * @param manifest  the parsed manifest.json
 */
public record GuestImage(Path dir, Path kernel, Path initramfs, ImageManifest manifest) {

    /** File name of the kernel in an image directory. */
    public static final String KERNEL = "vmlinuz";
    /** File name of the initramfs in an image directory. */
    public static final String INITRAMFS = "initramfs.cpio.gz";
    /** File name of the manifest in an image directory. */
    public static final String MANIFEST = "manifest.json";

    /** The Jackson mapper for manifests: indented, map keys sorted (stable output). */
    static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS)
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    /**
     * Opens an image directory and checks it: the manifest must parse and have format {@value ImageManifest#FORMAT},
     * and the SHA-256 of vmlinuz and initramfs.cpio.gz must match the manifest's outputs.
     *
     * @throws IllegalArgumentException naming the file, if the manifest or an output is missing, unreadable
     *                                  or does not match
     */
    public static GuestImage verify(Path dir) {
        Path manifestFile = dir.resolve(MANIFEST);
        if (!Files.isRegularFile(manifestFile)) {
            throw new IllegalArgumentException("not a guest image: " + manifestFile + " does not exist");
        }
        ImageManifest manifest;
        try {
            manifest = JSON.readValue(manifestFile.toFile(), ImageManifest.class);
        } catch (IOException e) {
            throw new IllegalArgumentException("unreadable guest image manifest " + manifestFile + ": "
                    + e.getMessage().lines().findFirst().orElse(""), e);
        }
        if (manifest.format() != ImageManifest.FORMAT || manifest.outputs() == null) {
            throw new IllegalArgumentException("guest image manifest " + manifestFile + " has format " + manifest.format()
                    + " (expected " + ImageManifest.FORMAT + ") or no outputs");
        }
        GuestImage image = new GuestImage(dir, dir.resolve(KERNEL), dir.resolve(INITRAMFS), manifest);
        for (Path file : new Path[]{image.kernel, image.initramfs}) {
            String name = file.getFileName().toString();
            String expected = manifest.outputs().get(name);
            if (expected == null) {
                throw new IllegalArgumentException("guest image manifest " + manifestFile + " has no SHA-256 for " + name);
            }
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("guest image file " + file + " does not exist");
            }
            String actual = Hashes.sha256(file);
            if (!actual.equals(expected)) {
                throw new IllegalArgumentException("guest image file " + file + " has SHA-256 " + actual
                        + ", the manifest says " + expected);
            }
        }
        return image;
    }
}
