package dev.panamax.kvm;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.core.sys.LinuxException;
import dev.panamax.kvm.bindings.kvm_cpuid2;
import dev.panamax.kvm.bindings.kvm_cpuid_entry2;
import dev.panamax.kvm.bindings.kvm_h;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The KVM subsystem: an open {@code /dev/kvm} (Documentation/virt/kvm/api.rst, section 4, "system
 * ioctls"). Checks on open that this host can run Panamax's VMs: API version 12 and the capabilities
 * the x86 machine needs.
 */
public final class Kvm implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Kvm.class);

    public static final Path DEV_KVM = Path.of("/dev/kvm");
    /** Where a loaded kernel module shows up: {@code /sys/module/NAME}. */
    public static final Path SYS_MODULE = Path.of("/sys/module");
    public static final Path PROC_CPUINFO = Path.of("/proc/cpuinfo");

    /** Capabilities without which the machine cannot be built (each {@code KVM_CAP_*} value and its name). */
    static final List<Capability> REQUIRED = List.of(
            new Capability(kvm_h.KVM_CAP_IRQCHIP(), "KVM_CAP_IRQCHIP"),
            new Capability(kvm_h.KVM_CAP_USER_MEMORY(), "KVM_CAP_USER_MEMORY"),
            new Capability(kvm_h.KVM_CAP_SET_TSS_ADDR(), "KVM_CAP_SET_TSS_ADDR"),
            new Capability(kvm_h.KVM_CAP_SET_IDENTITY_MAP_ADDR(), "KVM_CAP_SET_IDENTITY_MAP_ADDR"),
            new Capability(kvm_h.KVM_CAP_PIT2(), "KVM_CAP_PIT2"),
            new Capability(kvm_h.KVM_CAP_IMMEDIATE_EXIT(), "KVM_CAP_IMMEDIATE_EXIT"),
            new Capability(kvm_h.KVM_CAP_EXT_CPUID(), "KVM_CAP_EXT_CPUID"),
            new Capability(kvm_h.KVM_CAP_IRQFD(), "KVM_CAP_IRQFD"),
            new Capability(kvm_h.KVM_CAP_IRQ_ROUTING(), "KVM_CAP_IRQ_ROUTING"));

    record Capability(int value, String name) {
    }

    private final int fd;
    private final int nrMemslots;
    private final boolean irqfdResample;
    private final long vcpuMmapSize;
    private List<CpuidEntry> supportedCpuid;
    private boolean closed;

    private Kvm(int fd) {
        this.fd = fd;
        try {
            int version = Libc.ioctl(fd, kvm_h.KVM_GET_API_VERSION(), 0, "KVM_GET_API_VERSION");
            if (version != kvm_h.KVM_API_VERSION()) {
                throw new KvmException("/dev/kvm speaks KVM API version " + version + ", Panamax needs "
                        + kvm_h.KVM_API_VERSION());
            }
            List<String> missing = new ArrayList<>();
            for (Capability cap : REQUIRED) {
                if (checkExtension(cap.value()) <= 0) {
                    missing.add(cap.name());
                }
            }
            if (!missing.isEmpty()) {
                throw new KvmException("/dev/kvm lacks " + String.join(", ", missing) + ", which Panamax needs");
            }
            int slots = checkExtension(kvm_h.KVM_CAP_NR_MEMSLOTS());
            this.nrMemslots = slots > 0 ? slots : 32; // kernels before the capability had 32 user slots
            this.irqfdResample = checkExtension(kvm_h.KVM_CAP_IRQFD_RESAMPLE()) > 0;
            this.vcpuMmapSize = Libc.ioctl(fd, kvm_h.KVM_GET_VCPU_MMAP_SIZE(), 0, "KVM_GET_VCPU_MMAP_SIZE");
            log.debug("/dev/kvm: API 12, {} memory slots, kvm_run mapping {} bytes, irqfd resample {}",
                    nrMemslots, vcpuMmapSize, irqfdResample);
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
    }

    /**
     * Opens {@code /dev/kvm} and checks it.
     *
     * @throws KvmException with a one-line reason: no {@code /dev/kvm}, no permission, a PVM host, an API
     *                      version other than 12, or missing capabilities
     */
    public static Kvm open() {
        return open(DEV_KVM, SYS_MODULE, PROC_CPUINFO);
    }

    /** {@link #open()} with the host's paths given (tests pass fake ones). */
    static Kvm open(Path devKvm, Path sysModule, Path cpuinfo) {
        hostProblem(devKvm, sysModule, cpuinfo).ifPresent(problem -> {
            throw new KvmException(problem);
        });
        int fd;
        try {
            fd = Libc.open(devKvm.toString(), Libc.O_RDWR | Libc.O_CLOEXEC);
        } catch (LinuxException e) {
            throw new KvmException(openProblem(devKvm, e.errno()), e);
        }
        return new Kvm(fd);
    }

    /**
     * What, seen from the file system, keeps this host from running a stock Linux guest on KVM.
     *
     * @param devKvm    the KVM device, normally {@code /dev/kvm}
     * @param sysModule the loaded-modules directory, normally {@code /sys/module}
     * @param cpuinfo   normally {@code /proc/cpuinfo}
     * @return a one-line reason, or empty if nothing is visibly wrong
     */
    static Optional<String> hostProblem(Path devKvm, Path sysModule, Path cpuinfo) {
        if (!Files.exists(devKvm)) {
            return Optional.of(devKvm + " not found: this host has no KVM; run nested (see tests/README.md)");
        }
        // PVM (a paravirtualized KVM for hosts without VT-x/AMD-V, module kvm_pvm) offers /dev/kvm, but its
        // guests must be PVM-aware kernels: a stock kernel cannot boot on it.
        if (Files.isDirectory(sysModule.resolve("kvm_pvm")) && !hasHardwareVirtualization(cpuinfo)) {
            return Optional.of("this " + devKvm + " is PVM (kvm_pvm), which cannot boot a stock Linux kernel; "
                    + "run on a host whose CPU shows vmx or svm in " + cpuinfo + " (bare metal or nested, see tests/README.md)");
        }
        return Optional.empty();
    }

    /**
     * @param cpuinfo normally {@link #PROC_CPUINFO}
     * @return whether any "flags" line of {@code cpuinfo} lists vmx (Intel VT-x) or svm (AMD-V)
     * @throws UncheckedIOException if it cannot be read
     */
    public static boolean hasHardwareVirtualization(Path cpuinfo) {
        try {
            for (String line : Files.readAllLines(cpuinfo)) {
                if (line.startsWith("flags")) {
                    int colon = line.indexOf(':');
                    for (String flag : line.substring(colon + 1).trim().split("\\s+")) {
                        if (flag.equals("vmx") || flag.equals("svm")) {
                            return true;
                        }
                    }
                }
            }
            return false;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + cpuinfo, e);
        }
    }

    /** @return the one-line reason for a failed {@code open} of the KVM device */
    static String openProblem(Path devKvm, int errno) {
        return switch (errno) {
            case Errno.EACCES, Errno.EPERM -> devKvm + ": permission denied; add this user to the group that owns it "
                    + "(usually 'kvm') or run as root";
            case Errno.ENOENT -> devKvm + " not found: this host has no KVM; run nested (see tests/README.md)";
            case Errno.ENODEV, Errno.ENXIO -> devKvm + " has no driver behind it: load kvm_intel or kvm_amd";
            default -> "open " + devKvm + ": " + Errno.describe(errno);
        };
    }

    /** @return the {@code /dev/kvm} file descriptor */
    public int fd() {
        return fd;
    }

    /**
     * {@code KVM_CHECK_EXTENSION} on {@code /dev/kvm}.
     *
     * @param capability a {@code KVM_CAP_*} value ({@link kvm_h})
     * @return 0 if unsupported, else 1 or a capability-specific number
     */
    public int checkExtension(int capability) {
        return Libc.ioctl(fd, kvm_h.KVM_CHECK_EXTENSION(), capability, "KVM_CHECK_EXTENSION " + capability);
    }

    /** @return the size in bytes of each vCPU's {@code kvm_run} mapping ({@code KVM_GET_VCPU_MMAP_SIZE}) */
    public long vcpuMmapSize() {
        return vcpuMmapSize;
    }

    /** @return how many memory slots a VM may have ({@code KVM_CAP_NR_MEMSLOTS}) */
    public int nrMemslots() {
        return nrMemslots;
    }

    /** @return whether irqfds may carry a resample fd (level-triggered interrupts, {@code KVM_CAP_IRQFD_RESAMPLE}) */
    public boolean hasIrqfdResample() {
        return irqfdResample;
    }

    /**
     * The CPUID leaves KVM can present on this host ({@code KVM_GET_SUPPORTED_CPUID}), read once.
     *
     * @throws LinuxException if KVM refuses (E2BIG past 4096 entries cannot happen on real hosts)
     */
    public synchronized List<CpuidEntry> supportedCpuid() {
        if (supportedCpuid == null) {
            // The caller offers nent slots; KVM answers E2BIG if the table needs more.
            for (int nent = 256; ; nent *= 2) {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment cpuid = arena.allocate(kvm_cpuid2.sizeof() + nent * kvm_cpuid_entry2.sizeof(), 8);
                    kvm_cpuid2.nent(cpuid, nent);
                    int r = Libc.ioctlRaw(fd, kvm_h.KVM_GET_SUPPORTED_CPUID(), cpuid);
                    if (r == -Errno.E2BIG && nent < 4096) {
                        continue;
                    }
                    if (r < 0) {
                        throw new LinuxException("KVM_GET_SUPPORTED_CPUID (" + nent + " entries)", -r);
                    }
                    supportedCpuid = List.copyOf(decodeCpuid(cpuid));
                    break;
                }
            }
        }
        return supportedCpuid;
    }

    /** @return the entries of a {@code struct kvm_cpuid2} */
    static List<CpuidEntry> decodeCpuid(MemorySegment cpuid) {
        int n = kvm_cpuid2.nent(cpuid);
        List<CpuidEntry> entries = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            MemorySegment e = kvm_cpuid2.entries(cpuid, i);
            entries.add(new CpuidEntry(kvm_cpuid_entry2.function(e), kvm_cpuid_entry2.index(e),
                    kvm_cpuid_entry2.flags(e), kvm_cpuid_entry2.eax(e), kvm_cpuid_entry2.ebx(e),
                    kvm_cpuid_entry2.ecx(e), kvm_cpuid_entry2.edx(e)));
        }
        return entries;
    }

    /** @return a {@code struct kvm_cpuid2} holding {@code entries}, allocated in {@code arena} */
    static MemorySegment encodeCpuid(Arena arena, List<CpuidEntry> entries) {
        MemorySegment cpuid = arena.allocate(kvm_cpuid2.sizeof() + entries.size() * kvm_cpuid_entry2.sizeof(), 8);
        kvm_cpuid2.nent(cpuid, entries.size());
        for (int i = 0; i < entries.size(); i++) {
            CpuidEntry c = entries.get(i);
            MemorySegment e = kvm_cpuid2.entries(cpuid, i);
            kvm_cpuid_entry2.function(e, c.function());
            kvm_cpuid_entry2.index(e, c.index());
            kvm_cpuid_entry2.flags(e, c.flags());
            kvm_cpuid_entry2.eax(e, c.eax());
            kvm_cpuid_entry2.ebx(e, c.ebx());
            kvm_cpuid_entry2.ecx(e, c.ecx());
            kvm_cpuid_entry2.edx(e, c.edx());
        }
        return cpuid;
    }

    /**
     * Creates a VM with the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT; see {@link KvmVm}.
     *
     * @throws LinuxException if KVM refuses one of the steps; the message names the ioctl
     */
    public KvmVm createVm() {
        return new KvmVm(this);
    }

    /** Closes {@code /dev/kvm}; VMs created from it stay valid until closed themselves. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Libc.close(fd);
        }
    }
}
