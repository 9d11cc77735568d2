package dev.panamax.launcher;

import dev.panamax.vmm.MemoryBackend;
import picocli.CommandLine;
import picocli.CommandLine.Option;

import java.util.Locale;

/**
 * How big the guest is and what its RAM lives in: {@code --cpus}, {@code --memory} and {@code --memory-backend}, as
 * QEMU and kvmtool users write them.
 */
public final class MachineSizeOptions {
    @Option(names = {"-c", "--cpus"}, paramLabel = "N", defaultValue = "1", description = "vCPUs (default: ${DEFAULT-VALUE}).")
    int cpus;

    @Option(names = {"-m", "--memory"}, paramLabel = "SIZE", defaultValue = "512M", converter = SizeConverter.class,
            description = "Guest RAM, e.g. 512M or 2G; a bare number is MiB (default: ${DEFAULT-VALUE}).")
    long memory;

    @Option(names = "--memory-backend", paramLabel = "KIND", defaultValue = "auto", converter = BackendConverter.class,
            description = "What guest RAM lives in: anonymous (transparent 2 MiB pages where THP allows), memfd (shared,"
                    + " for vfio-user servers), hugetlbfs (2 MiB pages from vm.nr_hugepages, reserved at start) or auto:"
                    + " memfd with a vfio-user device, else anonymous (default: ${DEFAULT-VALUE}).")
    MemoryBackend memoryBackend;

    /** Parses "anonymous", "memfd", "hugetlbfs" or "auto", in any case. */
    static final class BackendConverter implements CommandLine.ITypeConverter<MemoryBackend> {
        @Override
        public MemoryBackend convert(String value) {
            try {
                return MemoryBackend.valueOf(value.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException("'" + value + "' is not a memory backend"
                        + " (anonymous, memfd, hugetlbfs or auto)");
            }
        }
    }
}
