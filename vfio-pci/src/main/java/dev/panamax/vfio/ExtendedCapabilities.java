package dev.panamax.vfio;

import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciExpress;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.IntUnaryOperator;

import static dev.panamax.pci.PciExpress.*;

/**
 * Which of an assigned device's PCI Express extended capabilities (config space 0x100..0xFFF, PCIe Base Spec 6.0,
 * 7.6) the guest sees, and how the chain of next pointers is kept valid around the hidden ones: the rules QEMU
 * applies in {@code vfio_add_ext_cap()} (hw/vfio/pci.c), and a few more where Panamax has nothing to back a
 * capability with (it has no virtual IOMMU, and emulates neither SR-IOV nor resizable BARs).
 *
 * <h2>Hidden, each for a reason</h2>
 * <ul>
 * <li>id 0: a capability the host kernel already masked (kernel vfio-pci writes id 0 over what it hides).</li>
 * <li>SR-IOV (0x10): the guest would create virtual functions on the host, and the VF BARs it describes are
 *     not BARs this machine emulates or places (QEMU: "read-only VF BARs confuse OVMF").</li>
 * <li>MR-IOV (0x11) and VF resizable BAR (0x24): the same, for multi-root and VF BARs.</li>
 * <li>Resizable BAR (0x15): resizing moves and resizes BARs behind the VMM's back; BAR sizes here are the VFIO
 *     region sizes, fixed at start (until resizing is emulated).</li>
 * <li>ATS (0x0F), PRI (0x13), PASID (0x1B): they ask an IOMMU for translations and page requests; the guest has
 *     no virtual IOMMU, and enabling them would act on the host's IOMMU domain.</li>
 * <li>ARI (0x0E): it changes how function numbers decode and its next-function number names host functions;
 *     it needs next-function virtualization (QEMU: "XXX Needs next function virtualization").</li>
 * <li>Multicast (0x12): its MC_Base_Address is a second address decoder, like a BAR the VMM does not place.</li>
 * <li>Shadow Functions (0x2D): it makes the function answer for other function numbers, changing its identity.</li>
 * </ul>
 *
 * <h2>Kept: passed through (reads from the device, writes to it)</h2>
 * Everything else, as QEMU does: AER (0x01, the guest's error handling of its own device), Virtual Channel
 * (0x02, 0x09; the host kernel keeps its writes read-only), Device Serial Number (0x03, read-only identity
 * drivers use), Power Budgeting (0x04), vendor-specific (0x0B) and designated vendor-specific (0x23, drivers'
 * own registers), ACS (0x0D, read to judge isolation), DPA (0x16), TPH (0x17, a hint), LTR (0x18), Secondary
 * PCIe (0x19), L1 PM Substates (0x1E), PTM (0x1F), Data Link Feature (0x25), the physical layer capabilities
 * (0x26, 0x2A, 0x31), NPEM (0x29), DOE (0x2E) and any id not named here. Kernel vfio-pci still filters the
 * writes it considers unsafe; a vfio-user server filters its own.
 *
 * <h2>The chain</h2>
 * Each kept capability's header is shown with its next pointer rewritten to the next kept one (0 for the last).
 * When the capability at 0x100 is hidden, a header stays there with id 0, version 0 and next pointing at the first
 * kept one ("reserved for this purpose", as QEMU seeds it); with nothing kept, 0x100 reads 0, the empty chain.
 * A hidden capability's body reads 0 and drops writes, up to the next capability of the chain above it (or
 * the end of config space), as QEMU sizes unknown capabilities ({@code vfio_ext_cap_max_size}).
 *
 * <p>The device's chain is walked defensively: each offset must be at least 0x100 and leave room for a header
 * below the end of config space, and be seen once (the walk also stops after (4096 - 256) / 4 hops); a header of 0
 * or all ones past 0x100 is not a capability. Where it goes bad the chain is cut (the last good capability's next
 * reads 0) and one line is logged. The low two bits of a next pointer are masked, as 7.6.3 asks of software.
 */
final class ExtendedCapabilities {
    private static final Logger log = LoggerFactory.getLogger(ExtendedCapabilities.class);

    /** The ids hidden from the guest, with the reason (see the class comment). */
    static final Map<Integer, String> HIDDEN = Map.ofEntries(
            Map.entry(0, "masked by the host"),
            Map.entry(EXT_CAP_ID_SRIOV, "SR-IOV: the guest would create VFs with BARs the VMM does not place"),
            Map.entry(EXT_CAP_ID_MRIOV, "MR-IOV: the guest would create functions the VMM does not know"),
            Map.entry(EXT_CAP_ID_VF_REBAR, "VF resizable BAR: resizes VF BARs"),
            Map.entry(EXT_CAP_ID_REBAR, "resizable BAR: moves and resizes BARs (not emulated)"),
            Map.entry(EXT_CAP_ID_ATS, "ATS: needs a virtual IOMMU"),
            Map.entry(EXT_CAP_ID_PRI, "PRI: needs a virtual IOMMU"),
            Map.entry(EXT_CAP_ID_PASID, "PASID: needs a virtual IOMMU"),
            Map.entry(EXT_CAP_ID_ARI, "ARI: needs next-function virtualization"),
            Map.entry(EXT_CAP_ID_MCAST, "multicast: a second address decoder the VMM does not place"),
            Map.entry(EXT_CAP_ID_SHADOW, "shadow functions: answers for other function numbers"));

    /**
     * One capability of the device's chain, as walked.
     *
     * @param offset  where its header is, 0x100..0xFFC
     * @param id      extended capability id
     * @param version capability version
     * @param end     end (exclusive) of the bytes it may take: the next chain offset above it, or the config size
     * @param hidden  why it is hidden, or null when it is kept
     */
    record Capability(int offset, int id, int version, int end, String hidden) {
        boolean kept() {
            return hidden == null;
        }
    }

    /** How the function shows a range of config bytes instead of the device's. */
    interface Virtualizer {
        /**
         * The {@code length} bytes at {@code offset} read as {@code value} (little-endian, zero beyond 4 bytes) and
         * guest writes to them are dropped.
         */
        void fixed(int offset, int length, int value);
    }

    private ExtendedCapabilities() {
    }

    /** @return why capability {@code id} is hidden, or null if it is passed through */
    static String hiddenBecause(int id) {
        return HIDDEN.get(id);
    }

    /**
     * Walks the device's extended capability chain.
     *
     * @param device     the device's name, for the log line of a bad chain
     * @param configSize bytes of the device's config space, 4096 (a smaller space has no extended capabilities)
     * @param readDword  reads the device's config dword at an offset
     * @return the capabilities in chain order, up to where the chain goes bad; empty when the dword at 0x100 is 0
     *         (no capabilities) or all ones (no extended space)
     */
    static List<Capability> walk(String device, int configSize, IntUnaryOperator readDword) {
        List<Capability> chain = new ArrayList<>();
        if (configSize < PciConfigSpace.EXTENDED_SIZE) {
            return chain;
        }
        Set<Integer> seen = new HashSet<>();
        int at = PciConfigSpace.EXTENDED_START;
        int maxHops = (PciConfigSpace.EXTENDED_SIZE - PciConfigSpace.EXTENDED_START) / 4;
        while (at != 0) {
            String bad = null;
            int header = 0;
            if (at < PciConfigSpace.EXTENDED_START || at + 4 > configSize) {
                bad = "points outside 0x100..0x" + Integer.toHexString(configSize - 1);
            } else if (!seen.add(at) || seen.size() > maxHops) {
                bad = "loops";
            } else {
                header = readDword.applyAsInt(at);
                if (header == 0 || header == -1) {
                    if (at == PciConfigSpace.EXTENDED_START) {
                        break; // no capabilities (0), or no extended space (all ones): shown as the device says
                    }
                    bad = String.format("has no capability (header 0x%08x)", header);
                }
            }
            if (bad != null) {
                log.warn("{}: extended capability chain {} at 0x{}: cut after {} capabilities", device, bad,
                        Integer.toHexString(at), chain.size());
                break;
            }
            int id = extCapId(header);
            chain.add(new Capability(at, id, extCapVersion(header), 0, hiddenBecause(id)));
            at = extCapNext(header);
        }
        List<Capability> sized = new ArrayList<>(chain.size());
        for (Capability c : chain) {
            int end = configSize;
            for (Capability other : chain) {
                if (other.offset() > c.offset() && other.offset() < end) {
                    end = other.offset();
                }
            }
            sized.add(new Capability(c.offset(), c.id(), c.version(), end, c.hidden()));
        }
        return sized;
    }

    /**
     * Walks the device's chain and puts the rules into effect through {@code virtualizer}: kept headers with their
     * next pointers rewritten, hidden capabilities read as 0 (the one at 0x100 as a header of id 0 pointing on).
     *
     * @return the chain as walked, each capability marked kept or hidden
     */
    static List<Capability> apply(String device, int configSize, IntUnaryOperator readDword, Virtualizer virtualizer) {
        List<Capability> chain = walk(device, configSize, readDword);
        for (int i = 0; i < chain.size(); i++) {
            Capability c = chain.get(i);
            int nextKept = 0;
            for (int j = i + 1; j < chain.size() && nextKept == 0; j++) {
                nextKept = chain.get(j).kept() ? chain.get(j).offset() : 0;
            }
            if (c.kept()) {
                virtualizer.fixed(c.offset(), 4, extCapHeader(c.id(), c.version(), nextKept));
            } else {
                boolean head = c.offset() == PciConfigSpace.EXTENDED_START;
                virtualizer.fixed(c.offset(), 4, head ? extCapHeader(0, 0, nextKept) : 0);
                virtualizer.fixed(c.offset() + 4, c.end() - c.offset() - 4, 0);
                log.debug("{}: extended capability 0x{} at 0x{} hidden: {}", device, Integer.toHexString(c.id()),
                        Integer.toHexString(c.offset()), c.hidden());
            }
        }
        return chain;
    }
}
