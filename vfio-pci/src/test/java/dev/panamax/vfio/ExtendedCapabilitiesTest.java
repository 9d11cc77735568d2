package dev.panamax.vfio;

import dev.panamax.core.bus.Bus;
import dev.panamax.core.memory.X86Layout;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.PciBus;
import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciExpress;
import dev.panamax.vfio.bindings.vfio_h;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.panamax.pci.PciExpress.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An assigned PCI Express function's extended config space over a fake device with 4 KiB of config space: what
 * the guest sees of the chain, what reads 0, and which writes reach the device.
 */
class ExtendedCapabilitiesTest {
    static final int CONFIG = vfio_h.VFIO_PCI_CONFIG_REGION_INDEX();
    static final MsiListener NO_MSI = new MsiListener() {
        @Override
        public void onVectorChanged(int vector, long address, int data, boolean masked) {
        }

        @Override
        public void onMessage(int vector, long address, int data) {
        }
    };

    /** A PCIe endpoint with 4 KiB of config space: a PCI Express capability (v2, Endpoint) at 0x40, no BARs. */
    static FakeVfioDevice express() {
        FakeVfioDevice d = new FakeVfioDevice();
        d.region(CONFIG, PciConfigSpace.EXTENDED_SIZE, 3);
        d.set(0x00, 4, 0x0953_8086); // an Intel NVMe controller's identity
        d.set(0x06, 2, PciConfigSpace.STATUS_CAP_LIST);
        d.set(0x34, 1, 0x40);
        d.set(0x40, 2, PciConfigSpace.CAP_ID_EXP); // last standard capability
        d.set(0x42, 2, 0x0002); // version 2, Endpoint
        d.set(0x40 + DEVCAP, 4, 0x1000_8fc0);
        d.set(0x40 + LNKCAP, 4, 0x0044_3c43); // 8 GT/s x4
        d.set(0x40 + LNKSTA, 2, 0x1043);
        d.set(0x40 + LNKCAP2, 4, 0x0e);
        return d;
    }

    static void ext(FakeVfioDevice d, int at, int id, int version, int next) {
        d.set(at, 4, extCapHeader(id, version, next));
    }

    /** The chain as the guest walks it (Linux's pci_find_next_ext_capability), as "id@offset". */
    static List<String> guestChain(VfioPciFunction f) {
        List<String> chain = new ArrayList<>();
        int at = 0x100;
        for (int hops = 0; at != 0 && hops < 960; hops++) {
            int h = f.configRead(at, 4);
            if (h == 0) {
                break;
            }
            chain.add(String.format("0x%x@0x%x", extCapId(h), at));
            at = extCapNext(h);
        }
        return chain;
    }

    @Test
    void keptCapabilitiesAreLinkedPastHiddenOnes() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_ERR, 2, 0x148);
        d.set(0x108, 4, 0x0040_0000); // AER uncorrectable error mask
        ext(d, 0x148, EXT_CAP_ID_SRIOV, 1, 0x188);
        d.set(0x148 + 0x0E, 2, 8); // SR-IOV InitialVFs
        d.set(0x148 + 0x24, 4, 0xC); // VF BAR0: 64-bit prefetchable
        ext(d, 0x188, EXT_CAP_ID_DSN, 1, 0x1A0);
        d.set(0x18C, 4, 0x1234_5678);
        d.set(0x190, 4, 0x9ABC_DEF0);
        ext(d, 0x1A0, EXT_CAP_ID_ATS, 1, 0x1B0);
        d.set(0x1A4, 4, 0x20);
        ext(d, 0x1B0, EXT_CAP_ID_LTR, 1, 0x1C0);
        ext(d, 0x1C0, EXT_CAP_ID_REBAR, 1, 0);
        d.set(0x1C4, 4, 0x000F_FFF0);
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);

        assertEquals(List.of("0x1@0x100", "0x3@0x188", "0x18@0x1b0"), guestChain(f));
        assertEquals(extCapHeader(EXT_CAP_ID_ERR, 2, 0x188), f.configRead(0x100, 4), "version kept, next rewritten");
        assertEquals(extCapHeader(EXT_CAP_ID_LTR, 1, 0), f.configRead(0x1B0, 4), "the last kept one ends the chain");
        // Kept bodies come from the device; a change on the device shows through.
        assertEquals(0x1234_5678, f.configRead(0x18C, 4));
        assertEquals(0x9ABC_DEF0, f.configRead(0x190, 4));
        d.set(0x108, 4, 0x0050_0000);
        assertEquals(0x0050_0000, f.configRead(0x108, 4));
        // Hidden ones read 0 from header to the next capability, at every width.
        for (int at = 0x148; at < 0x188; at++) {
            assertEquals(0, f.configRead(at, 1), "SR-IOV byte 0x" + Integer.toHexString(at));
        }
        assertEquals(0, f.configRead(0x148 + 0x0E, 2));
        assertEquals(0, f.configRead(0x1A4, 4), "ATS");
        assertEquals(0, f.configRead(0x1C4, 4), "resizable BAR");
        assertEquals(0, f.configRead(0xFFC, 4), "the last hidden one runs to the end of config space");
        // Writes to kept capabilities reach the device; writes to hidden ones do not.
        d.writes.clear();
        f.configWrite(0x108, 4, 0x0070_0000);
        assertEquals(0x0070_0000, d.get(CONFIG, 0x108, 4));
        f.configWrite(0x148 + 0x08, 2, 0x0009); // SR-IOV control: VF enable | VF MSE
        f.configWrite(0x148 + 0x10, 2, 8); // NumVFs
        f.configWrite(0x1A4 + 2, 2, 0x8000); // ATS enable
        f.configWrite(0x1C8, 4, 0x0000_0D00); // resize BAR0
        f.configWrite(0x100, 4, 0); // headers are read-only
        assertEquals(List.of(new FakeVfioDevice.Write(CONFIG, 0x108, 4)), d.configWritesIn(0x100, 0x1000));
        assertEquals(0, d.get(CONFIG, 0x148 + 0x08, 2));

        List<ExtendedCapabilities.Capability> walked = f.extendedCapabilities();
        assertEquals(List.of(true, false, true, false, true, false),
                walked.stream().map(ExtendedCapabilities.Capability::kept).toList());
        assertEquals(0x188, walked.get(1).end());
    }

    @Test
    void aHiddenFirstCapabilityLeavesAnIdZeroHeaderPointingOn() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_SRIOV, 1, 0x140);
        d.set(0x104, 4, 0x1);
        ext(d, 0x140, EXT_CAP_ID_DSN, 1, 0x150);
        d.set(0x144, 4, 0xCAFE);
        ext(d, 0x150, EXT_CAP_ID_ARI, 1, 0);
        d.set(0x154, 4, 0x0100);
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);
        assertEquals(extCapHeader(0, 0, 0x140), f.configRead(0x100, 4));
        assertEquals(0, f.configRead(0x104, 4));
        assertEquals(extCapHeader(EXT_CAP_ID_DSN, 1, 0), f.configRead(0x140, 4));
        assertEquals(0xCAFE, f.configRead(0x144, 4));
        assertEquals(0, f.configRead(0x154, 4), "ARI body");
        assertEquals(List.of("0x0@0x100", "0x3@0x140"), guestChain(f));
    }

    @Test
    void aFullyHiddenChainReadsZeroAt0x100() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_ATS, 1, 0x110);
        ext(d, 0x110, EXT_CAP_ID_PASID, 1, 0x120);
        ext(d, 0x120, EXT_CAP_ID_PRI, 1, 0);
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);
        assertEquals(0, f.configRead(0x100, 4), "the empty chain, yet not all ones: 4 KiB to Linux");
        assertEquals(List.of(), guestChain(f));
    }

    @Test
    void aLoopingChainIsCutWhereItLoops() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_ERR, 2, 0x140);
        ext(d, 0x140, EXT_CAP_ID_DSN, 1, 0x100); // back to the start
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);
        assertEquals(extCapHeader(EXT_CAP_ID_DSN, 1, 0), f.configRead(0x140, 4));
        assertEquals(List.of("0x1@0x100", "0x3@0x140"), guestChain(f));

        FakeVfioDevice self = express();
        ext(self, 0x100, EXT_CAP_ID_VNDR, 1, 0x100); // points at itself
        VfioPciFunction g = new VfioPciFunction(self, NO_MSI);
        assertEquals(extCapHeader(EXT_CAP_ID_VNDR, 1, 0), g.configRead(0x100, 4));
    }

    @Test
    void aChainPointingOutsideExtendedSpaceOrAtNothingIsCut() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_ERR, 2, 0x140);
        ext(d, 0x140, EXT_CAP_ID_DSN, 1, 0x0FC); // into conventional space
        ext(d, 0x0FC, EXT_CAP_ID_LTR, 1, 0);
        assertEquals(List.of("0x1@0x100", "0x3@0x140"), guestChain(new VfioPciFunction(d, NO_MSI)));

        FakeVfioDevice ones = express();
        ext(ones, 0x100, EXT_CAP_ID_ERR, 2, 0xFFC);
        ones.set(0xFFC, 4, 0xFFFF_FFFFL); // the last dword, past what the device implements
        VfioPciFunction f = new VfioPciFunction(ones, NO_MSI);
        assertEquals(extCapHeader(EXT_CAP_ID_ERR, 2, 0), f.configRead(0x100, 4));
        assertEquals(1, f.extendedCapabilities().size());

        // The last dword itself is a valid place for a capability with no body.
        FakeVfioDevice last = express();
        ext(last, 0x100, EXT_CAP_ID_ERR, 2, 0xFFC);
        ext(last, 0xFFC, EXT_CAP_ID_LTR, 1, 0);
        assertEquals(List.of("0x1@0x100", "0x18@0xffc"), guestChain(new VfioPciFunction(last, NO_MSI)));

        // A next pointer is 12 bits with its low two masked: it cannot point past 0xFFC. A pointer to a zero dword
        // (nothing there) is cut like the others, and the capability before it runs to the end of config space.
        int header = extCapHeader(EXT_CAP_ID_ERR, 2, 0x800);
        List<ExtendedCapabilities.Capability> walked = ExtendedCapabilities.walk("fake", 0x1000, at -> at == 0x100 ? header : 0);
        assertEquals(1, walked.size(), "0x800 reads 0: no capability there");
        assertEquals(0x1000, walked.get(0).end());
        assertEquals(0xFFC, extCapNext(0xFFFF_FFFF), "the highest offset a header can name");
    }

    @Test
    void noExtendedCapabilitiesOrNoExtendedSpace() {
        FakeVfioDevice none = express(); // 0x100 reads 0
        VfioPciFunction f = new VfioPciFunction(none, NO_MSI);
        assertEquals(0, f.configRead(0x100, 4));
        assertEquals(List.of(), f.extendedCapabilities());
        FakeVfioDevice absent = express();
        absent.set(0x100, 4, 0xFFFF_FFFFL); // a device whose extended space does not answer: shown as it is
        assertEquals(0xFFFF_FFFF, new VfioPciFunction(absent, NO_MSI).configRead(0x100, 4));
        FakeVfioDevice conventional = new FakeVfioDevice(); // 256-byte config region
        assertEquals(0, new VfioPciFunction(conventional, NO_MSI).configRead(0x100, 4));
    }

    @Test
    void anEndpointOnBusZeroIsShownAsARootComplexIntegratedEndpointWithoutLink() {
        FakeVfioDevice d = express();
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);
        int flags = f.configRead(0x40 + FLAGS, 2);
        assertEquals(TYPE_RC_INTEGRATED_ENDPOINT, (flags & FLAGS_TYPE) >>> 4);
        assertEquals(2, flags & FLAGS_VERSION);
        assertEquals(0x1000_8fc0, f.configRead(0x40 + DEVCAP, 4), "device registers come from the device");
        for (int reg : new int[] {LNKCAP, LNKCTL, LNKSTA, LNKCAP2, LNKCTL2, LNKSTA2}) {
            assertEquals(0, f.configRead(0x40 + reg, 2), "link register 0x" + Integer.toHexString(reg));
        }
        d.writes.clear();
        f.configWrite(0x40 + LNKCTL, 2, 0x0003); // ASPM L0s|L1: not the guest's to set on the host's link
        f.configWrite(0x40 + DEVCTL, 2, 0x2810);
        assertEquals(List.of(new FakeVfioDevice.Write(CONFIG, 0x40 + DEVCTL, 2)), d.configWritesIn(0x40, 0x100));

        FakeVfioDevice v0 = express();
        v0.set(0x42, 2, 0x0090); // an RCiEP of version 0 (the 82599 VF erratum)
        assertEquals(0x0091, new VfioPciFunction(v0, NO_MSI).configRead(0x42, 2));
    }

    /** The guest reaches all of this through ECAM, and only through ECAM: CONFIG_DATA stops at 0xFF. */
    @Test
    void theGuestSeesItThroughEcam() {
        FakeVfioDevice d = express();
        ext(d, 0x100, EXT_CAP_ID_SRIOV, 1, 0x140);
        ext(d, 0x140, EXT_CAP_ID_DSN, 1, 0);
        d.set(0x144, 4, 0xCAFE);
        VfioPciFunction f = new VfioPciFunction(d, NO_MSI);
        PciBus bus = new PciBus(null);
        Bus mmio = new Bus("mmio");
        bus.registerEcam(mmio);
        bus.attach(4, 0, f);
        long fn = X86Layout.ECAM_BASE + (4 << 15);
        assertEquals(0x0953_8086L, mmio.read(fn, 4));
        assertEquals(Integer.toUnsignedLong(extCapHeader(0, 0, 0x140)), mmio.read(fn + 0x100, 4));
        assertEquals(0xCAFEL, mmio.read(fn + 0x144, 4));
        assertEquals(0L, mmio.read(fn + 0x104, 4));
    }

    @Test
    void everyHiddenIdHasAReasonAndTheSafeOnesPassThrough() {
        for (int id : new int[] {0, EXT_CAP_ID_SRIOV, EXT_CAP_ID_MRIOV, EXT_CAP_ID_REBAR, EXT_CAP_ID_VF_REBAR,
                EXT_CAP_ID_ATS, EXT_CAP_ID_PRI, EXT_CAP_ID_PASID, EXT_CAP_ID_ARI, EXT_CAP_ID_MCAST, EXT_CAP_ID_SHADOW}) {
            assertNotNull(ExtendedCapabilities.hiddenBecause(id), "0x" + Integer.toHexString(id));
            assertTrue(!ExtendedCapabilities.hiddenBecause(id).isBlank());
        }
        for (int id : new int[] {EXT_CAP_ID_ERR, EXT_CAP_ID_VC, EXT_CAP_ID_DSN, EXT_CAP_ID_PWR, EXT_CAP_ID_VNDR,
                EXT_CAP_ID_ACS, EXT_CAP_ID_LTR, EXT_CAP_ID_SECPCI, EXT_CAP_ID_L1SS, EXT_CAP_ID_PTM, EXT_CAP_ID_DVSEC,
                EXT_CAP_ID_DLF, EXT_CAP_ID_PL_16GT, 0x7FFF}) {
            assertNull(ExtendedCapabilities.hiddenBecause(id), "0x" + Integer.toHexString(id));
        }
        assertEquals(11, ExtendedCapabilities.HIDDEN.size());
        assertEquals(PciExpress.EXT_CAP_ID_SRIOV, 0x10);
    }
}
