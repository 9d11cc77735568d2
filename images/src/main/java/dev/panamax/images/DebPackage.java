package dev.panamax.images;

import java.nio.file.Path;

/**
 * A downloaded Debian binary package.
 *
 * @param name    the package name (the .deb's control field "Package", e.g. "linux-image-6.1.0-56-amd64")
 * @param version the control field "Version" (e.g. "1:1.35.0-4+deb12u1+b1", epoch included)
 * @param sha256  SHA-256 of the .deb file, 64 lowercase hex digits
 * @param file    the .deb in the package cache
 */
public record DebPackage(String name, String version, String sha256, Path file) {
}
