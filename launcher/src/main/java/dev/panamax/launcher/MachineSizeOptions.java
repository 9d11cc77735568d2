package dev.panamax.launcher;

import picocli.CommandLine.Option;

/** How big the guest is: {@code --cpus} and {@code --memory}, as QEMU and kvmtool users write them. */
public final class MachineSizeOptions {
    @Option(names = {"-c", "--cpus"}, paramLabel = "N", defaultValue = "1", description = "vCPUs (default: ${DEFAULT-VALUE}).")
    int cpus;

    @Option(names = {"-m", "--memory"}, paramLabel = "SIZE", defaultValue = "512M", converter = SizeConverter.class,
            description = "Guest RAM, e.g. 512M or 2G; a bare number is MiB (default: ${DEFAULT-VALUE}).")
    long memory;
}
