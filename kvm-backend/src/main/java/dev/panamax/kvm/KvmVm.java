package dev.panamax.kvm;

import dev.panamax.core.irq.IrqLine;
import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.memory.DeviceMemoryRegion;
import dev.panamax.core.memory.IoEventFds;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.RamRegion;
import dev.panamax.core.memory.ReservedRegion;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.core.sys.Libc;
import dev.panamax.kvm.bindings.kvm_dirty_log;
import dev.panamax.kvm.bindings.kvm_h;
import dev.panamax.kvm.bindings.kvm_ioeventfd;
import dev.panamax.kvm.bindings.kvm_irq_level;
import dev.panamax.kvm.bindings.kvm_irqfd;
import dev.panamax.kvm.bindings.kvm_pit_config;
import dev.panamax.kvm.bindings.kvm_userspace_memory_region;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;

/**
 * One KVM virtual machine (api.rst section 4, "vm ioctls"), set up as an x86 PC: the TSS and EPT
 * identity-map pages at the top of the 32-bit space, the in-kernel irqchip (two 8259 PICs, an IOAPIC and
 * a local APIC per vCPU) and the in-kernel 8254 PIT.
 *
 * <p>Guest RAM reaches KVM through {@link #memoryListener()}: each {@link RamRegion} of the address
 * space becomes a memory slot ({@code KVM_SET_USER_MEMORY_REGION}), and so does each
 * {@link DeviceMemoryRegion} (an assigned device's mmapped BAR); other regions are left unmapped so that
 * guest accesses to them exit as MMIO. Interrupts from devices outside this process reach the guest through
 * {@link #irqRoutes()} (GSI routes and irqfds), and their doorbells leave the guest through {@link #ioEventFds()}
 * ({@code KVM_IOEVENTFD}).
 */
public final class KvmVm implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(KvmVm.class);

    private static final long PAGE = 4096;

    private final Kvm kvm;
    private final int fd;
    private final Memslots memslots;
    private final Map<MemoryRegion, Integer> slotOf = new HashMap<>();
    /** Whether RAM slots carry {@code KVM_MEM_LOG_DIRTY_PAGES} ({@link #startDirtyLog}). Guarded by this. */
    private boolean dirtyLogging;
    private KvmIrqRoutes irqRoutes;
    private final List<KvmVcpu> vcpus = new ArrayList<>();
    /** One kvm_irq_level per thread that raises interrupts, so KVM_IRQ_LINE does not allocate. */
    private final ThreadLocal<MemorySegment> irqLevel =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(kvm_irq_level.layout()));
    private boolean closed;

    KvmVm(Kvm kvm) {
        this.kvm = kvm;
        this.fd = Libc.ioctl(kvm.fd(), kvm_h.KVM_CREATE_VM(), 0, "KVM_CREATE_VM");
        this.memslots = new Memslots(kvm.nrMemslots());
        try {
            // Both before any vCPU exists (api.rst: KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR). Their pages lie in the
            // PCI hole (X86Layout); the machine reserves them in its address space, away from RAM and BARs.
            Libc.ioctl(fd, kvm_h.KVM_SET_TSS_ADDR(), X86Layout.KVM_TSS_ADDRESS, "KVM_SET_TSS_ADDR");
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment addr = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, X86Layout.KVM_IDENTITY_MAP_ADDRESS);
                Libc.ioctl(fd, kvm_h.KVM_SET_IDENTITY_MAP_ADDR(), addr, "KVM_SET_IDENTITY_MAP_ADDR");
                Libc.ioctl(fd, kvm_h.KVM_CREATE_IRQCHIP(), 0, "KVM_CREATE_IRQCHIP");
                // flags 0: no KVM_PIT_SPEAKER_DUMMY; port 0x61 then exits to user space.
                MemorySegment pit = kvm_pit_config.allocate(arena);
                Libc.ioctl(fd, kvm_h.KVM_CREATE_PIT2(), pit, "KVM_CREATE_PIT2");
            }
        } catch (RuntimeException e) {
            Libc.close(fd);
            throw e;
        }
        log.debug("VM fd {}: TSS at 0x{}, identity map at 0x{}, in-kernel irqchip and PIT", fd,
                Long.toHexString(X86Layout.KVM_TSS_ADDRESS), Long.toHexString(X86Layout.KVM_IDENTITY_MAP_ADDRESS));
    }

    /** @return the VM file descriptor */
    public int fd() {
        return fd;
    }

    /** @return the {@link Kvm} this VM was created from */
    public Kvm kvm() {
        return kvm;
    }

    /**
     * The listener that mirrors guest RAM and mapped device memory into memory slots: add it to the machine's
     * address space. Other regions are ignored: MMIO must stay unmapped to exit, and a {@link ReservedRegion} is not
     * a memory slot (the IOAPIC and local APIC are KVM's in-kernel devices, the TSS and identity map its own pages).
     */
    public MemoryListener memoryListener() {
        return new MemoryListener() {
            @Override
            public void regionAdded(MemoryRegion region) {
                switch (region) {
                    case RamRegion ram -> addSlot(ram, ram.host());
                    case DeviceMemoryRegion device -> addSlot(device, device.host());
                    default -> { }
                }
            }

            @Override
            public void regionRemoved(MemoryRegion region) {
                switch (region) {
                    case RamRegion ram -> removeSlot(ram, ram.host());
                    case DeviceMemoryRegion device -> removeSlot(device, device.host());
                    default -> { }
                }
            }
        };
    }

    private synchronized void addSlot(MemoryRegion region, MemorySegment host) {
        long hva = host.address();
        if (region.guestPhysicalAddress() % PAGE != 0 || region.size() % PAGE != 0 || hva % PAGE != 0) {
            throw new IllegalArgumentException(String.format(
                    "region %s: guest-physical 0x%x, size 0x%x, host 0x%x must all be multiples of 4 KiB",
                    region.name(), region.guestPhysicalAddress(), region.size(), hva));
        }
        int slot = memslots.allocate(region.name());
        try {
            setUserMemoryRegion(slot, region.guestPhysicalAddress(), region.size(), hva, slotFlags(region));
        } catch (RuntimeException e) {
            memslots.free(slot);
            throw e;
        }
        slotOf.put(region, slot);
        log.debug("memslot {}: guest-physical [0x{}, +0x{}) <- host 0x{} ({})", slot,
                Long.toHexString(region.guestPhysicalAddress()), Long.toHexString(region.size()), Long.toHexString(hva),
                region.name());
    }

    private synchronized void removeSlot(MemoryRegion region, MemorySegment host) {
        Integer slot = slotOf.remove(region);
        if (slot == null) {
            return;
        }
        // api.rst: "Deleting a slot is done by passing zero for memory_size."
        setUserMemoryRegion(slot, region.guestPhysicalAddress(), 0, host.address(), 0);
        memslots.free(slot);
        log.debug("memslot {} removed ({})", slot, region.name());
    }

    private void setUserMemoryRegion(int slot, long gpa, long bytes, long hva, int flags) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = kvm_userspace_memory_region.allocate(arena);
            kvm_userspace_memory_region.slot(r, slot);
            kvm_userspace_memory_region.flags(r, flags);
            kvm_userspace_memory_region.guest_phys_addr(r, gpa);
            kvm_userspace_memory_region.memory_size(r, bytes);
            kvm_userspace_memory_region.userspace_addr(r, hva);
            Libc.ioctl(fd, kvm_h.KVM_SET_USER_MEMORY_REGION(), r, String.format(
                    "KVM_SET_USER_MEMORY_REGION slot %d guest-physical 0x%x size 0x%x host 0x%x flags 0x%x", slot, gpa, bytes,
                    hva, flags));
        }
    }

    /** Guest RAM slots log dirty pages while {@link #dirtyLogging}; device memory (BARs) never does. */
    private int slotFlags(MemoryRegion region) {
        return dirtyLogging && region instanceof RamRegion ? kvm_h.KVM_MEM_LOG_DIRTY_PAGES() : 0;
    }

    // ---- dirty page logging (live migration) ----

    /**
     * Turns dirty page logging on for every guest RAM slot: each is set again ({@code KVM_SET_USER_MEMORY_REGION} on
     * the same slot, same range) with {@code KVM_MEM_LOG_DIRTY_PAGES} (api.rst 4.35); RAM added later gets it too.
     * From now on KVM records each 4 KiB page the vCPUs write; {@link #dirtyLog} reads and clears the record. The
     * classic mode: {@code KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2} is never enabled, so {@code KVM_GET_DIRTY_LOG} clears
     * as it reads. Writes by this process (not through a vCPU) are not recorded. Idempotent.
     *
     * @throws dev.panamax.core.sys.LinuxException if KVM refuses a slot (the slots set so far keep logging:
     *                                             {@link #stopDirtyLog} turns them off)
     */
    public synchronized void startDirtyLog() {
        if (!dirtyLogging) {
            dirtyLogging = true;
            resetRamSlots();
            log.debug("dirty page logging on for {} RAM slots", ramSlots().size());
        }
    }

    /** Turns dirty page logging off again ({@link #startDirtyLog} undone); idempotent. */
    public synchronized void stopDirtyLog() {
        if (dirtyLogging) {
            dirtyLogging = false;
            resetRamSlots();
            log.debug("dirty page logging off");
        }
    }

    /** @return whether {@link #startDirtyLog} is in effect */
    public synchronized boolean dirtyLogging() {
        return dirtyLogging;
    }

    /**
     * The pages of {@code region} written since logging started or since the last call for it
     * ({@code KVM_GET_DIRTY_LOG}, {@code struct kvm_dirty_log}; api.rst 4.8), and clears them.
     *
     * @param region a guest RAM region of this VM's address space
     * @return a bitmap, one bit per 4 KiB page of the region: page {@code p} (guest-physical
     *         {@code region.guestPhysicalAddress() + p * 4096}) is bit {@code p % 64} of word {@code p / 64};
     *         {@code ceil(pages / 64)} words, as KVM sizes it ({@code ALIGN(npages, BITS_PER_LONG) / 8} bytes)
     * @throws IllegalStateException if logging is off, or {@code region} is no memory slot of this VM
     * @throws dev.panamax.core.sys.LinuxException if the ioctl fails
     */
    public synchronized long[] dirtyLog(RamRegion region) {
        if (!dirtyLogging) {
            throw new IllegalStateException("dirty page logging is off: startDirtyLog() first");
        }
        Integer slot = slotOf.get(region);
        if (slot == null) {
            throw new IllegalStateException("region " + region.name() + " is no memory slot of this VM");
        }
        int words = bitmapWords(region.size());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment bitmap = arena.allocate((long) words * 8, 8);
            MemorySegment d = kvm_dirty_log.allocate(arena);
            kvm_dirty_log.slot(d, slot);
            kvm_dirty_log.dirty_bitmap(d, bitmap.address());
            Libc.ioctl(fd, kvm_h.KVM_GET_DIRTY_LOG(), d, "KVM_GET_DIRTY_LOG slot " + slot + " (" + region.name() + ")");
            return bitmap.toArray(java.lang.foreign.ValueLayout.JAVA_LONG);
        }
    }

    /** @return how many 64-bit words a dirty bitmap of a {@code bytes}-long slot has */
    static int bitmapWords(long bytes) {
        long pages = bytes / PAGE;
        return Math.toIntExact((pages + 63) / 64);
    }

    private List<RamRegion> ramSlots() {
        List<RamRegion> r = new ArrayList<>();
        for (MemoryRegion m : slotOf.keySet()) {
            if (m instanceof RamRegion ram) {
                r.add(ram);
            }
        }
        return r;
    }

    /** Sets every RAM slot again with the flags {@link #dirtyLogging} gives (api.rst: a slot's flags may change in place). */
    private void resetRamSlots() {
        for (RamRegion ram : ramSlots()) {
            setUserMemoryRegion(slotOf.get(ram), ram.guestPhysicalAddress(), ram.size(), ram.host().address(), slotFlags(ram));
        }
    }

    /**
     * Drives an interrupt line of the in-kernel irqchip ({@code KVM_IRQ_LINE}). On x86, GSIs 0-15 reach both
     * the PIC and the IOAPIC, 16-23 the IOAPIC. For an edge, assert then deassert.
     *
     * @param gsi   the global system interrupt number
     * @param level {@code true} to assert
     */
    public void setIrqLine(int gsi, boolean level) {
        MemorySegment irq = irqLevel.get();
        kvm_irq_level.irq(irq, gsi);
        kvm_irq_level.level(irq, level ? 1 : 0);
        Libc.ioctl(fd, kvm_h.KVM_IRQ_LINE(), irq, "KVM_IRQ_LINE");
    }

    /** @return an {@link IrqLine} driving {@code gsi} through {@link #setIrqLine} */
    public IrqLine irqLine(int gsi) {
        return level -> setIrqLine(gsi, level);
    }

    /**
     * Makes an eventfd inject {@code gsi} when signalled ({@code KVM_IRQFD}); for edge-triggered or MSI
     * routes. The eventfd stays the caller's to close.
     */
    public void assignIrqfd(int eventFd, int gsi) {
        irqfd(eventFd, gsi, 0, "KVM_IRQFD assign");
    }

    /**
     * Makes an eventfd assert level-triggered {@code gsi} when signalled, and the guest's EOI of it deassert the
     * line and signal {@code resampleFd} ({@code KVM_IRQFD} with {@code KVM_IRQFD_FLAG_RESAMPLE}): an assigned
     * device's INTx, whose resample eventfd is VFIO's unmask eventfd. Both eventfds stay the caller's.
     */
    public void assignResampleIrqfd(int eventFd, int resampleFd, int gsi) {
        irqfd(eventFd, gsi, kvm_h.KVM_IRQFD_FLAG_RESAMPLE(), resampleFd, "KVM_IRQFD assign with resample fd " + resampleFd + ",");
    }

    /** Undoes {@link #assignIrqfd} or {@link #assignResampleIrqfd} ({@code KVM_IRQFD} with {@code KVM_IRQFD_FLAG_DEASSIGN}). */
    public void deassignIrqfd(int eventFd, int gsi) {
        irqfd(eventFd, gsi, kvm_h.KVM_IRQFD_FLAG_DEASSIGN(), "KVM_IRQFD deassign");
    }

    private void irqfd(int eventFd, int gsi, int flags, String what) {
        irqfd(eventFd, gsi, flags, 0, what);
    }

    private void irqfd(int eventFd, int gsi, int flags, int resampleFd, String what) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_irqfd.allocate(arena);
            kvm_irqfd.fd(s, eventFd);
            kvm_irqfd.gsi(s, gsi);
            kvm_irqfd.flags(s, flags);
            kvm_irqfd.resamplefd(s, resampleFd);
            Libc.ioctl(fd, kvm_h.KVM_IRQFD(), s, what + " fd " + eventFd + " gsi " + gsi);
        }
    }

    /**
     * Makes a guest write to MMIO {@code address} signal {@code eventFd} instead of exiting ({@code KVM_IOEVENTFD},
     * api.rst 4.59): of {@code length} bytes (1, 2, 4, 8) and, with a datamatch, only of that value; length 0
     * matches any write at the address (KVM's fast MMIO bus). The eventfd stays the caller's to close.
     *
     * @throws IllegalArgumentException for a bad length, or a datamatch with length 0
     * @throws dev.panamax.core.sys.LinuxException from the ioctl (EEXIST: the same doorbell is assigned already)
     */
    public void assignIoeventfd(long address, int length, OptionalLong datamatch, int eventFd) {
        ioeventfd(address, length, datamatch, eventFd, false);
    }

    /** Undoes {@link #assignIoeventfd} with the same arguments ({@code KVM_IOEVENTFD_FLAG_DEASSIGN}). */
    public void deassignIoeventfd(long address, int length, OptionalLong datamatch, int eventFd) {
        ioeventfd(address, length, datamatch, eventFd, true);
    }

    /** @return {@link #assignIoeventfd} and {@link #deassignIoeventfd} as vmm-core's {@link IoEventFds} */
    public IoEventFds ioEventFds() {
        return new IoEventFds() {
            @Override
            public void assign(long address, int length, OptionalLong datamatch, int eventFd) {
                assignIoeventfd(address, length, datamatch, eventFd);
            }

            @Override
            public void deassign(long address, int length, OptionalLong datamatch, int eventFd) {
                deassignIoeventfd(address, length, datamatch, eventFd);
            }
        };
    }

    private void ioeventfd(long address, int length, OptionalLong datamatch, int eventFd, boolean deassign) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = kvm_ioeventfd.allocate(arena);
            fillIoeventfd(s, address, length, datamatch, eventFd, deassign);
            Libc.ioctl(fd, kvm_h.KVM_IOEVENTFD(), s, String.format("KVM_IOEVENTFD %s MMIO 0x%x length %d%s eventfd %d",
                    deassign ? "deassign" : "assign", address, length,
                    datamatch.isPresent() ? " datamatch 0x" + Long.toHexString(datamatch.getAsLong()) : "", eventFd));
        }
    }

    /**
     * Fills a zeroed {@code struct kvm_ioeventfd}: MMIO (no {@code KVM_IOEVENTFD_FLAG_PIO}),
     * {@code KVM_IOEVENTFD_FLAG_DATAMATCH} with a datamatch, {@code KVM_IOEVENTFD_FLAG_DEASSIGN} to deassign.
     */
    static void fillIoeventfd(MemorySegment s, long address, int length, OptionalLong datamatch, int eventFd, boolean deassign) {
        IoEventFds.check(length, datamatch);
        kvm_ioeventfd.addr(s, address);
        kvm_ioeventfd.len(s, length);
        kvm_ioeventfd.fd(s, eventFd);
        kvm_ioeventfd.datamatch(s, datamatch.orElse(0));
        kvm_ioeventfd.flags(s, (datamatch.isPresent() ? kvm_h.KVM_IOEVENTFD_FLAG_DATAMATCH() : 0)
                | (deassign ? kvm_h.KVM_IOEVENTFD_FLAG_DEASSIGN() : 0));
    }

    /**
     * The VM's GSI routing and irqfds, for devices whose interrupts do not pass through this process (VFIO,
     * vfio-user). The first call installs the routing table ({@code KVM_SET_GSI_ROUTING}) with the default
     * irqchip routes, so GSIs 0-23 keep meaning the PIC's and IOAPIC's pins.
     */
    public synchronized IrqRoutes irqRoutes() {
        if (irqRoutes == null) {
            irqRoutes = new KvmIrqRoutes(this);
        }
        return irqRoutes;
    }

    /**
     * Creates and configures a vCPU: CPUID with APIC id {@code id} in a VM of {@code vcpuCount} vCPUs, the
     * boot MSRs, the FPU and the local APIC's LINT0/LINT1 ({@link X86VcpuSetup#configure}). The boot vCPU then
     * needs {@link KvmVcpu#setBootState}; the others wait for INIT/SIPI in the in-kernel LAPIC.
     *
     * @param id        the vCPU id, also its APIC id, 0..vcpuCount-1
     * @param vcpuCount how many vCPUs the VM will have (for the CPUID topology)
     */
    public synchronized KvmVcpu createVcpu(int id, int vcpuCount) {
        KvmVcpu vcpu = new KvmVcpu(this, id);
        try {
            X86VcpuSetup.configure(vcpu, kvm.supportedCpuid(), vcpuCount);
        } catch (RuntimeException e) {
            vcpu.close();
            throw e;
        }
        vcpus.add(vcpu);
        return vcpu;
    }

    /** @return the vCPUs created so far, by creation order */
    public synchronized List<KvmVcpu> vcpus() {
        return List.copyOf(vcpus);
    }

    /** Closes the vCPUs (unmapping their kvm_run) and the VM; KVM frees the memory slots with it. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException first = null;
        for (KvmVcpu v : vcpus) {
            try {
                v.close();
            } catch (RuntimeException e) {
                first = first == null ? e : first;
            }
        }
        Libc.close(fd);
        if (first != null) {
            throw first;
        }
    }

    // ---- the VM's state (snapshot, restore, migration) ----

    /**
     * Reads the in-kernel PICs, IOAPIC and PIT and the kvmclock ({@link X86VmState#save}); the vCPUs must not run.
     *
     * @throws dev.panamax.core.sys.LinuxException if KVM refuses an ioctl; the message names it
     */
    public VmState saveState() {
        return X86VmState.save(this);
    }

    /**
     * Puts them back ({@link X86VmState#restore}); the kvmclock continues from the saved value
     * ({@code KVM_SET_CLOCK} with flags 0), so call this after the vCPUs' {@link KvmVcpu#restoreState}, just before
     * they run.
     *
     * @throws dev.panamax.core.sys.LinuxException if KVM refuses an ioctl; the message names it
     */
    public void restoreState(VmState state) {
        X86VmState.restore(this, state);
    }

    /** @return the guest's kvmclock now ({@code KVM_GET_CLOCK}), nanoseconds */
    public long clock() {
        return X86VmState.clock(this);
    }

    /** Sets the guest's kvmclock ({@code KVM_SET_CLOCK}, {@link X86VmState#setClock}), nanoseconds. */
    public void setClock(long nanoseconds) {
        X86VmState.setClock(this, nanoseconds);
    }
}
