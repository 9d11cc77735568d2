package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.IoEventFds;
import dev.panamax.core.sys.Libc;
import dev.panamax.pci.BarListener;
import dev.panamax.pci.PciBar;
import dev.panamax.pci.PciFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Registers a vfio-user device's ioeventfds with the VM, so that the guest's doorbell writes signal the server's
 * eventfds in the kernel instead of exiting to this process and crossing the socket as REGION_WRITE (spec,
 * "VFIO_USER_DEVICE_GET_REGION_IO_FDS"; linux/kvm.h {@code KVM_IOEVENTFD}). At {@link #attach}, each memory BAR's
 * region is asked for its io fds (an error reply or none: that BAR has none); while a BAR decodes, each of its
 * ioeventfds is assigned at the BAR's guest-physical address plus the sub-region's offset, deassigned when the guest
 * moves the BAR or turns memory decode off (a {@link BarListener} on the function), and re-assigned where it lands.
 * {@link #close} deassigns all and closes the fds. A doorbell KVM refuses (an identical one exists, say) is logged
 * and keeps going by REGION_WRITE.
 *
 * <p>Ordering: a doorbell that bypasses the socket can overtake a posted REGION_WRITE still on its way (the write
 * that enabled the queue, say). The VMM therefore turns posted writes off for a device it registers ioeventfds for
 * ({@code ioeventfd=on}); each BAR write then waits for the server's reply, so it is served before the guest can ring.
 */
public final class VfioUserIoEventFds implements BarListener, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserIoEventFds.class);

    private final String name;
    private final IoEventFds vm;
    /** Per BAR index: the ioeventfds the server offered for its region. */
    private final Map<Integer, List<RegionIoFds.IoEventFd>> offered = new HashMap<>();
    /** Per BAR index: the ones assigned now, and at which guest-physical address. */
    private final Map<Integer, List<Assigned>> assigned = new HashMap<>();
    private boolean closed;

    private record Assigned(RegionIoFds.IoEventFd fd, long address) {
    }

    private VfioUserIoEventFds(String name, IoEventFds vm) {
        this.name = name;
        this.vm = vm;
    }

    /**
     * Asks {@code client} for the io fds of each memory BAR of {@code function} (the device's function on the VM's
     * PCI bus), assigns those of BARs that decode now and follows the BARs from then on.
     *
     * @param vm the VM's ioeventfds (KvmVm's)
     * @throws VfioUserDeviceBrokenException when the server breaks the protocol (the fds received so far are closed)
     */
    public static VfioUserIoEventFds attach(VfioUserClient client, PciFunction function, IoEventFds vm) {
        VfioUserIoEventFds r = new VfioUserIoEventFds(client.name(), vm);
        try {
            for (int i = 0; i < PciFunction.BAR_COUNT; i++) {
                PciBar bar = function.bar(i);
                if (bar == null || bar.isIo()) {
                    continue;
                }
                List<RegionIoFds.IoEventFd> fds = client.regionIoEventFds(i, bar.size());
                if (!fds.isEmpty()) {
                    r.offered.put(i, fds);
                    LOG.debug("{} BAR {}: {} ioeventfds offered", r.name, i, fds.size());
                }
            }
        } catch (RuntimeException e) {
            r.close();
            throw e;
        }
        synchronized (function.lock()) {
            function.addBarListener(r);
            for (int i : r.offered.keySet()) {
                long at = function.decodedAddress(i);
                if (at >= 0) {
                    r.barMapped(function, i, function.bar(i), at);
                }
            }
        }
        return r;
    }

    /** @return how many ioeventfds are assigned now (for tests and stats) */
    public synchronized int assignedCount() {
        return assigned.values().stream().mapToInt(List::size).sum();
    }

    /** @return how many ioeventfds the server offered, over all BARs */
    public synchronized int offeredCount() {
        return offered.values().stream().mapToInt(List::size).sum();
    }

    @Override
    public synchronized void barMapped(PciFunction function, int index, PciBar bar, long address) {
        List<RegionIoFds.IoEventFd> fds = offered.get(index);
        if (closed || fds == null) {
            return;
        }
        deassign(index); // never twice at once
        List<Assigned> now = new ArrayList<>();
        for (RegionIoFds.IoEventFd e : fds) {
            long gpa = address + e.offset();
            try {
                vm.assign(gpa, e.size(), e.datamatch(), e.fd());
                now.add(new Assigned(e, gpa));
            } catch (RuntimeException ex) {
                LOG.warn("{} BAR {}: ioeventfd at 0x{} not registered, that doorbell goes by REGION_WRITE: {}", name, index,
                        Long.toHexString(gpa), ex.getMessage());
            }
        }
        assigned.put(index, now);
        LOG.debug("{} BAR {} at 0x{}: {} ioeventfds registered", name, index, Long.toHexString(address), now.size());
    }

    @Override
    public synchronized void barUnmapped(PciFunction function, int index, PciBar bar, long address) {
        deassign(index);
    }

    private void deassign(int index) {
        List<Assigned> list = assigned.remove(index);
        if (list == null) {
            return;
        }
        for (Assigned a : list) {
            try {
                vm.deassign(a.address, a.fd.size(), a.fd.datamatch(), a.fd.fd());
            } catch (RuntimeException e) {
                LOG.warn("{} BAR {}: deassigning the ioeventfd at 0x{} failed: {}", name, index, Long.toHexString(a.address), e.getMessage());
            }
        }
    }

    /** Deassigns every ioeventfd and closes the fds; later BAR events are ignored. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (int index : List.copyOf(assigned.keySet())) {
            deassign(index);
        }
        for (List<RegionIoFds.IoEventFd> list : offered.values()) {
            for (RegionIoFds.IoEventFd e : list) {
                Libc.close(e.fd());
            }
        }
        offered.clear();
    }
}
