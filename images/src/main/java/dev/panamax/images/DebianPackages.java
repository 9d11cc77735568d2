package dev.panamax.images;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Fetches Debian binary packages with {@code apt-get download} (no root needed, uses the host's apt sources
 * and package lists) into a cache directory, and unpacks them with {@code dpkg-deb -x}.
 *
 * <p>Cache layout: {@code CACHE/debs/*.deb} (as apt names them) and {@code CACHE/extracted/<deb file stem>/}.
 * A package whose .deb is already cached with the SHA-256 the package lists expect is not downloaded again.
 */
public final class DebianPackages {

    private static final Logger log = LoggerFactory.getLogger(DebianPackages.class);

    /** Debian policy 5.6.1 package names, optionally "=VERSION" (policy 5.6.12) or ":ARCH". */
    private static final Pattern PACKAGE_SPEC = Pattern.compile("[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?");
    /** One line of "apt-get download --print-uris": 'URI' FILE SIZE HASHTYPE:HEX. */
    private static final Pattern PRINT_URIS = Pattern.compile("'([^']+)' (\\S+) (\\d+) (\\S+)");

    private static final long APT_TIMEOUT_S = 30 * 60;
    private static final long DPKG_TIMEOUT_S = 10 * 60;

    private final Path cacheDir;

    /** A package cache rooted at {@code cacheDir} (created on first use). */
    public DebianPackages(Path cacheDir) {
        this.cacheDir = cacheDir.toAbsolutePath().normalize();
    }

    /** A package cache at {@link #defaultCacheDir()}. */
    public static DebianPackages inDefaultCache() {
        return new DebianPackages(defaultCacheDir());
    }

    /** {@code $XDG_CACHE_HOME/panamax}, or {@code ~/.cache/panamax} when XDG_CACHE_HOME is unset or empty. */
    public static Path defaultCacheDir() {
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("panamax");
    }

    /** The cache root. */
    public Path cacheDir() {
        return cacheDir;
    }

    /**
     * The .deb of package {@code spec} ("name" or "name=version"), from the cache or downloaded into it.
     *
     * @throws IllegalArgumentException if the name is malformed or apt cannot locate the package
     * @throws IllegalStateException    if apt-get / dpkg-deb fail or the download does not match its hash
     */
    public DebPackage fetch(String spec) {
        if (spec == null || !PACKAGE_SPEC.matcher(spec).matches()) {
            throw new IllegalArgumentException("invalid Debian package name '" + spec + "'");
        }
        Path debs = cacheDir.resolve("debs");
        Path work = null;
        try {
            Files.createDirectories(debs);
            // apt-get skips packages already present in its working directory: ask in an empty one.
            work = Files.createTempDirectory(debs, ".download-");
            Command.Result uris = Command.run(List.of("apt-get", "download", "--print-uris", spec), work, APT_TIMEOUT_S);
            if (uris.exitCode() != 0) {
                throw notFound(spec, uris);
            }
            Matcher m = null;
            for (String line : uris.stdout().split("\n")) {
                Matcher candidate = PRINT_URIS.matcher(line.strip());
                if (candidate.matches()) {
                    m = candidate;
                    break;
                }
            }
            if (m == null) {
                throw new IllegalStateException("apt-get download --print-uris " + spec + " printed no download line: '"
                        + uris.stdout().strip() + "'");
            }
            String uri = m.group(1);
            String fileName = m.group(2);
            long size = Long.parseLong(m.group(3));
            String expectedSha = m.group(4).startsWith("SHA256:") ? m.group(4).substring(7).toLowerCase() : null;
            if (fileName.contains("/") || fileName.startsWith(".")) {
                throw new IllegalStateException("apt-get gave an unexpected file name '" + fileName + "' for " + spec);
            }
            Path cached = debs.resolve(fileName);
            if (Files.isRegularFile(cached) && Files.size(cached) == size
                    && (expectedSha == null || expectedSha.equals(Hashes.sha256(cached)))) {
                log.debug("{}: using cached {}", spec, cached);
                return describe(cached);
            }
            log.info("downloading Debian package {} ({} KiB) from {}", spec, (size + 1023) / 1024, uri);
            Command.Result dl = Command.run(List.of("apt-get", "download", spec), work, APT_TIMEOUT_S);
            if (dl.exitCode() != 0) {
                throw new IllegalStateException("apt-get download " + spec + " failed: " + dl.errorLine());
            }
            Path got = work.resolve(fileName);
            if (!Files.isRegularFile(got)) {
                throw new IllegalStateException("apt-get download " + spec + " did not produce " + fileName);
            }
            String sha = Hashes.sha256(got);
            if (expectedSha != null && !expectedSha.equals(sha)) {
                throw new IllegalStateException("downloaded " + fileName + " has SHA-256 " + sha + ", the package lists say " + expectedSha);
            }
            Files.move(got, cached, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            log.info("downloaded {}", cached);
            return describe(cached);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot fetch Debian package " + spec + " into " + debs + ": " + e.getMessage(), e);
        } finally {
            if (work != null) {
                deleteTree(work);
            }
        }
    }

    private static IllegalArgumentException notFound(String spec, Command.Result r) {
        String why = r.errorLine();
        if (why.contains("Unable to locate") || why.contains("candidate") || why.contains("not found")
                || why.contains("has no installation candidate")) {
            return new IllegalArgumentException("unknown Debian package '" + spec + "': apt-get cannot locate it ("
                    + why + "); run 'apt-get update' if the package lists are stale");
        }
        return new IllegalArgumentException("cannot locate Debian package '" + spec + "': " + why);
    }

    /** Name, version and SHA-256 of a .deb file (control fields read with {@code dpkg-deb -f}). */
    public DebPackage describe(Path deb) {
        return new DebPackage(field(deb, "Package"), field(deb, "Version"), Hashes.sha256(deb), deb.toAbsolutePath());
    }

    /**
     * A control field of a .deb ({@code dpkg-deb -f FILE FIELD}); "" if the package has no such field.
     *
     * @throws IllegalStateException if dpkg-deb fails (e.g. not a .deb)
     */
    public static String field(Path deb, String field) {
        Command.Result r = Command.run(List.of("dpkg-deb", "-f", deb.toString(), field), null, DPKG_TIMEOUT_S);
        if (r.exitCode() != 0) {
            throw new IllegalStateException("dpkg-deb -f " + deb + " " + field + " failed: " + r.errorLine());
        }
        return r.stdout().strip();
    }

    /**
     * Resolves a kernel package: a metapackage such as {@code linux-image-amd64} is followed through its
     * Depends to the {@code linux-image-*} package it names (with the exact version when the dependency pins
     * one, "(= V)"), until a package that depends on no other linux-image-* package.
     *
     * @throws IllegalArgumentException if a package in the chain is unknown, or the chain is longer than 4
     */
    public DebPackage fetchKernel(String spec) {
        return fetchKernelChain(spec).getLast();
    }

    /**
     * Like {@link #fetchKernel} but returns every package on the way: the metapackages first, the package
     * holding the kernel last.
     */
    public List<DebPackage> fetchKernelChain(String spec) {
        List<DebPackage> chain = new ArrayList<>();
        String next = spec;
        for (int depth = 0; depth < 4; depth++) {
            DebPackage pkg = fetch(next);
            chain.add(pkg);
            String dep = kernelDependency(field(pkg.file(), "Depends"));
            if (dep == null) {
                return List.copyOf(chain);
            }
            log.debug("{} {} is a metapackage for {}", pkg.name(), pkg.version(), dep);
            next = dep;
        }
        throw new IllegalArgumentException("kernel package '" + spec + "': more than 4 metapackages deep");
    }

    /**
     * The first {@code linux-image-*} package in a Depends field (Debian policy 7.1: comma-separated, '|'
     * alternatives, optional "(op version)"), as "name=version" when pinned with "=", else "name"; null if none.
     */
    static String kernelDependency(String depends) {
        for (String clause : depends.split(",")) {
            String first = clause.split("\\|")[0].strip();
            Matcher m = Pattern.compile("([a-z0-9][a-z0-9+.-]+)(?::\\S+)?\\s*(?:\\(\\s*([<>=]+)\\s*([^)\\s]+)\\s*\\))?.*").matcher(first);
            if (m.matches() && m.group(1).startsWith("linux-image-")) {
                return "=".equals(m.group(2)) ? m.group(1) + "=" + m.group(3) : m.group(1);
            }
        }
        return null;
    }

    /**
     * The package's files unpacked ({@code dpkg-deb -x}) into {@code CACHE/extracted/<deb file stem>/}; done
     * once per .deb (into a temporary directory renamed at the end), later calls return the same directory.
     */
    public Path extract(DebPackage pkg) {
        String stem = pkg.file().getFileName().toString().replaceFirst("\\.deb$", "") + "-" + pkg.sha256().substring(0, 12);
        Path extracted = cacheDir.resolve("extracted");
        Path target = extracted.resolve(stem);
        if (Files.isDirectory(target)) {
            return target;
        }
        Path tmp = null;
        try {
            Files.createDirectories(extracted);
            tmp = Files.createTempDirectory(extracted, "." + stem + "-");
            log.info("unpacking {} {}", pkg.name(), pkg.version());
            Command.Result r = Command.run(List.of("dpkg-deb", "-x", pkg.file().toString(), tmp.toString()), null, DPKG_TIMEOUT_S);
            if (r.exitCode() != 0) {
                throw new IllegalStateException("dpkg-deb -x " + pkg.file() + " failed: " + r.errorLine());
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                if (!Files.isDirectory(target)) { // else another process unpacked it meanwhile
                    throw e;
                }
            }
            return target;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot unpack " + pkg.file() + " into " + target + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null && Files.exists(tmp)) {
                deleteTree(tmp);
            }
        }
    }

    /** Deletes a directory tree, best effort (symlinks are removed, not followed). */
    static void deleteTree(Path dir) {
        if (!Files.exists(dir, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            List<Path> all = new ArrayList<>(walk.toList());
            all.sort(Comparator.reverseOrder());
            for (Path p : all) {
                // dpkg-deb may unpack read-only directories; make them writable so their entries can go.
                if (Files.isDirectory(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                    p.toFile().setWritable(true);
                }
            }
            for (Path p : all) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            log.warn("cannot delete {}: {}", dir, e.getMessage());
        }
    }
}
