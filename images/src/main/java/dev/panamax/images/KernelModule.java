package dev.panamax.images;

import java.nio.file.Path;

/**
 * One loadable kernel module as listed in modules.dep.
 *
 * @param name         the module name as its file is named, without the .ko / .ko.xz / .ko.zst / .ko.gz suffix
 *                     (e.g. "nvme-core"; modprobe treats '-' and '_' as equal, so this may differ from the
 *                     name the kernel reports in /proc/modules, "nvme_core")
 * @param file         the module file on the host (absolute, under the module tree's root)
 * @param relativePath the path relative to /lib/modules/VER, exactly as in modules.dep
 *                     (e.g. "kernel/drivers/nvme/host/nvme.ko")
 */
public record KernelModule(String name, Path file, String relativePath) {

    /**
     * The compression of the module file: "" for a plain .ko, else "xz", "zst" or "gz" (the kernel's
     * CONFIG_MODULE_COMPRESS_* choices). busybox insmod loads only plain .ko files.
     */
    public String compression() {
        if (relativePath.endsWith(".ko")) {
            return "";
        }
        return relativePath.substring(relativePath.lastIndexOf('.') + 1);
    }

    /** Whether the file is compressed (see {@link #compression()}). */
    public boolean compressed() {
        return !compression().isEmpty();
    }
}
