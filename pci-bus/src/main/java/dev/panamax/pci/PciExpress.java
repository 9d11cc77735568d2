package dev.panamax.pci;

/**
 * Register offsets and values of PCI Express configuration space that more than one device model uses: the PCI
 * Express capability (capability id {@link PciConfigSpace#CAP_ID_EXP}; PCIe Base Spec 6.0, 7.5.3) and the extended
 * capability ids (7.6 and the PCI-SIG's Code and ID Assignment Spec). Names are those of Linux's
 * {@code include/uapi/linux/pci_regs.h} ({@code PCI_EXP_*}, {@code PCI_EXT_CAP_ID_*}).
 */
public final class PciExpress {
    private PciExpress() {
    }

    // The PCI Express capability: offsets from the capability's start.
    /** PCI Express Capabilities register, 16 bits: version 3..0, Device/Port Type 7..4, slot, interrupt message. */
    public static final int FLAGS = 0x02;
    /** {@link #FLAGS} bits 3..0: the capability's version (2 for a structure with the *2 registers). */
    public static final int FLAGS_VERSION = 0x000F;
    /** {@link #FLAGS} bits 7..4: the Device/Port Type. */
    public static final int FLAGS_TYPE = 0x00F0;
    public static final int DEVCAP = 0x04;
    public static final int DEVCTL = 0x08;
    public static final int DEVSTA = 0x0A;
    public static final int LNKCAP = 0x0C;
    public static final int LNKCTL = 0x10;
    public static final int LNKSTA = 0x12;
    public static final int DEVCAP2 = 0x24;
    public static final int DEVCTL2 = 0x28;
    public static final int LNKCAP2 = 0x2C;
    public static final int LNKCTL2 = 0x30;
    public static final int LNKSTA2 = 0x32;
    /** Bytes of a version 2 PCI Express capability, header included ({@code PCI_CAP_EXP_SIZEOF}). */
    public static final int CAPABILITY_SIZE_V2 = 0x3C;

    // Device/Port Type values (7.5.3.2), as they sit in FLAGS bits 7..4.
    /** PCI Express Endpoint: a function below a Root Port or Switch Downstream Port, with a Link. */
    public static final int TYPE_ENDPOINT = 0x0;
    /** Legacy PCI Express Endpoint. */
    public static final int TYPE_LEGACY_ENDPOINT = 0x1;
    public static final int TYPE_ROOT_PORT = 0x4;
    public static final int TYPE_UPSTREAM_PORT = 0x5;
    public static final int TYPE_DOWNSTREAM_PORT = 0x6;
    /** Root Complex Integrated Endpoint: a function of the Root Complex itself, on its internal bus, no Link. */
    public static final int TYPE_RC_INTEGRATED_ENDPOINT = 0x9;
    /** Root Complex Event Collector. */
    public static final int TYPE_RC_EVENT_COLLECTOR = 0xA;

    // DEVCTL bits software may set (7.5.3.4): error reporting enables 3..0, relaxed ordering 4, max payload 7..5,
    // extended tag 8, no snoop 11, max read request 14..12.
    public static final int DEVCTL_WRITABLE = 0x78FF;
    /** DEVSTA bits 3..0: error detected bits, RW1C. */
    public static final int DEVSTA_ERRORS = 0x000F;

    // Extended capability ids (pci_regs.h PCI_EXT_CAP_ID_*).
    public static final int EXT_CAP_ID_ERR = 0x01;
    public static final int EXT_CAP_ID_VC = 0x02;
    public static final int EXT_CAP_ID_DSN = 0x03;
    public static final int EXT_CAP_ID_PWR = 0x04;
    public static final int EXT_CAP_ID_RCLD = 0x05;
    public static final int EXT_CAP_ID_RCILC = 0x06;
    public static final int EXT_CAP_ID_RCEC = 0x07;
    public static final int EXT_CAP_ID_MFVC = 0x08;
    public static final int EXT_CAP_ID_VC9 = 0x09;
    public static final int EXT_CAP_ID_RCRB = 0x0A;
    public static final int EXT_CAP_ID_VNDR = 0x0B;
    public static final int EXT_CAP_ID_CAC = 0x0C;
    public static final int EXT_CAP_ID_ACS = 0x0D;
    public static final int EXT_CAP_ID_ARI = 0x0E;
    public static final int EXT_CAP_ID_ATS = 0x0F;
    public static final int EXT_CAP_ID_SRIOV = 0x10;
    public static final int EXT_CAP_ID_MRIOV = 0x11;
    public static final int EXT_CAP_ID_MCAST = 0x12;
    public static final int EXT_CAP_ID_PRI = 0x13;
    public static final int EXT_CAP_ID_AMD_XXX = 0x14;
    public static final int EXT_CAP_ID_REBAR = 0x15;
    public static final int EXT_CAP_ID_DPA = 0x16;
    public static final int EXT_CAP_ID_TPH = 0x17;
    public static final int EXT_CAP_ID_LTR = 0x18;
    public static final int EXT_CAP_ID_SECPCI = 0x19;
    public static final int EXT_CAP_ID_PMUX = 0x1A;
    public static final int EXT_CAP_ID_PASID = 0x1B;
    public static final int EXT_CAP_ID_LNR = 0x1C;
    public static final int EXT_CAP_ID_DPC = 0x1D;
    public static final int EXT_CAP_ID_L1SS = 0x1E;
    public static final int EXT_CAP_ID_PTM = 0x1F;
    public static final int EXT_CAP_ID_FRS = 0x21;
    public static final int EXT_CAP_ID_RTR = 0x22;
    public static final int EXT_CAP_ID_DVSEC = 0x23;
    public static final int EXT_CAP_ID_VF_REBAR = 0x24;
    public static final int EXT_CAP_ID_DLF = 0x25;
    public static final int EXT_CAP_ID_PL_16GT = 0x26;
    public static final int EXT_CAP_ID_NPEM = 0x29;
    public static final int EXT_CAP_ID_PL_32GT = 0x2A;
    public static final int EXT_CAP_ID_SHADOW = 0x2D;
    public static final int EXT_CAP_ID_DOE = 0x2E;
    public static final int EXT_CAP_ID_IDE = 0x30;
    public static final int EXT_CAP_ID_PL_64GT = 0x31;

    /**
     * @return an extended capability header (7.6.3): id in bits 15..0, version 19..16, next offset 31..20
     */
    public static int extCapHeader(int id, int version, int next) {
        return (id & 0xFFFF) | (version & 0xF) << 16 | (next & 0xFFC) << 20;
    }

    /** @return the capability id of an extended capability header */
    public static int extCapId(int header) {
        return header & 0xFFFF;
    }

    /** @return the version of an extended capability header */
    public static int extCapVersion(int header) {
        return (header >>> 16) & 0xF;
    }

    /**
     * @return the next capability's offset in an extended capability header, its two low bits masked: "Reserved
     *         and must be implemented as 00b although software must mask them to allow for future uses" (7.6.3)
     */
    public static int extCapNext(int header) {
        return (header >>> 20) & 0xFFC;
    }
}
