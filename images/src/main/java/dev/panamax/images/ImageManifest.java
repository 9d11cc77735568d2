package dev.panamax.images;

import java.util.List;
import java.util.Map;

/**
 * The contents of an image directory's {@code manifest.json}: what went into the image and the SHA-256 of
 * each input and output, so that an image can be checked ({@link GuestImage#verify}) and rebuilt.
 *
 * @param format        manifest format version, {@value #FORMAT}
 * @param kernelRelease the guest kernel's release, e.g. "6.1.0-56-amd64" (its /lib/modules directory name)
 * @param packages      every input .deb, in the order fetched
 * @param modules       the kernel modules in the initramfs, in the order /init loads them
 * @param files         the host files added with --add (each file of an added directory)
 * @param initScript    the init script installed as /panamax/script, or null for an interactive image
 * @param outputs       output file name ("vmlinuz", "initramfs.cpio.gz") -> SHA-256
 */
public record ImageManifest(int format, String kernelRelease, List<PackageInfo> packages, List<ModuleInfo> modules,
                            List<FileInfo> files, FileInfo initScript, Map<String, String> outputs) {

    /** The manifest format version this code writes and reads. */
    public static final int FORMAT = 1;

    /**
     * One input .deb.
     *
     * @param role    "kernel-metapackage", "kernel" or "busybox"
     * @param file    the .deb's file name in the package cache
     * @param sha256  SHA-256 of the .deb
     */
    public record PackageInfo(String role, String name, String version, String file, String sha256) {
    }

    /**
     * One kernel module.
     *
     * @param name the module name (file name without .ko)
     * @param path its absolute path in the guest, /lib/modules/VER/...
     */
    public record ModuleInfo(String name, String path) {
    }

    /**
     * One host file copied into the guest.
     *
     * @param guestPath absolute path in the guest
     * @param source    the host path it was read from
     * @param sha256    SHA-256 of its contents
     */
    public record FileInfo(String guestPath, String source, String sha256) {
    }
}
