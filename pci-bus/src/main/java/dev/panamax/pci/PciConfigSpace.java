package dev.panamax.pci;

import java.util.ArrayList;
import java.util.List;

/**
 * One PCI function's configuration space: 256 bytes (PCI Local Bus Spec 3.0, 6.1) or 4 KiB (PCI Express
 * Base Spec, 7.2.2 "extended configuration space"), little-endian, with a write mask per byte so that the
 * device model declares which bits software may change.
 *
 * <p>Each bit is one of: read-only (RO, the default), read-write (RW, set with {@link #setWritable}) or
 * write-1-to-clear (RW1C, set with {@link #setW1c}: writing 1 clears it, writing 0 leaves it; the device
 * sets it with {@link #set8}/{@link #set16}/{@link #set32}). Guest accesses go through {@link #read} and
 * {@link #write}; the device model initialises fields with the {@code set*} methods, which ignore the masks.
 *
 * <p>Field offsets and bits are the names of Linux's {@code include/uapi/linux/pci_regs.h}.
 * Not thread-safe: the owner ({@link PciFunction}) serialises accesses.
 */
public final class PciConfigSpace {
    /** Size of conventional PCI configuration space, bytes. */
    public static final int SIZE = 256;
    /** Size of PCI Express extended configuration space, bytes. */
    public static final int EXTENDED_SIZE = 4096;
    /** Where the extended capabilities start (PCIe Base Spec 6.0, 7.6.3): the first byte past conventional space. */
    public static final int EXTENDED_START = 0x100;

    // Type 0 header (PCI 3.0, 6.1, Figure 6-1).
    public static final int VENDOR_ID = 0x00;
    public static final int DEVICE_ID = 0x02;
    public static final int COMMAND = 0x04;
    public static final int STATUS = 0x06;
    public static final int REVISION_ID = 0x08;
    /** Programming interface, the low byte of the 24-bit class code. */
    public static final int CLASS_PROG = 0x09;
    /** Sub-class (low byte) and base class (high byte) as one 16-bit field. */
    public static final int CLASS_DEVICE = 0x0A;
    public static final int CACHE_LINE_SIZE = 0x0C;
    public static final int LATENCY_TIMER = 0x0D;
    public static final int HEADER_TYPE = 0x0E;
    public static final int BIST = 0x0F;
    /** BAR 0; BAR n is at {@code BASE_ADDRESS_0 + 4 * n}, n in 0..5. */
    public static final int BASE_ADDRESS_0 = 0x10;
    public static final int CARDBUS_CIS = 0x28;
    public static final int SUBSYSTEM_VENDOR_ID = 0x2C;
    public static final int SUBSYSTEM_ID = 0x2E;
    public static final int ROM_ADDRESS = 0x30;
    public static final int CAPABILITY_LIST = 0x34;
    public static final int INTERRUPT_LINE = 0x3C;
    /** 0 = none, 1..4 = INTA#..INTD#. */
    public static final int INTERRUPT_PIN = 0x3D;
    public static final int MIN_GNT = 0x3E;
    public static final int MAX_LAT = 0x3F;
    /** First byte after the type 0 header: where capabilities go. */
    public static final int HEADER_END = 0x40;

    // Command register bits (PCI 3.0, 6.2.2).
    public static final int COMMAND_IO = 0x0001;
    public static final int COMMAND_MEMORY = 0x0002;
    public static final int COMMAND_MASTER = 0x0004;
    public static final int COMMAND_PARITY = 0x0040;
    public static final int COMMAND_SERR = 0x0100;
    public static final int COMMAND_INTX_DISABLE = 0x0400;

    // Status register bits (PCI 3.0, 6.2.3).
    public static final int STATUS_INTERRUPT = 0x0008;
    public static final int STATUS_CAP_LIST = 0x0010;
    public static final int STATUS_PARITY = 0x0100;
    public static final int STATUS_SIG_TARGET_ABORT = 0x0800;
    public static final int STATUS_REC_TARGET_ABORT = 0x1000;
    public static final int STATUS_REC_MASTER_ABORT = 0x2000;
    public static final int STATUS_SIG_SYSTEM_ERROR = 0x4000;
    public static final int STATUS_DETECTED_PARITY = 0x8000;
    /** The error bits of the status register, all RW1C. */
    public static final int STATUS_ERRORS = 0xF900;

    /** Header type 0: a general device. */
    public static final int HEADER_TYPE_NORMAL = 0x00;
    /** Bit 7 of the header type: the device has more than one function. */
    public static final int HEADER_TYPE_MULTI_FUNCTION = 0x80;

    // Capability ids (PCI 3.0, Appendix H).
    public static final int CAP_ID_PM = 0x01;
    public static final int CAP_ID_MSI = 0x05;
    public static final int CAP_ID_VNDR = 0x09;
    public static final int CAP_ID_EXP = 0x10;
    public static final int CAP_ID_MSIX = 0x11;

    private final byte[] data;
    private final byte[] writable;
    private final byte[] w1c;
    /** Offset of the last capability in the list, 0 when the list is empty. */
    private int lastCapability;
    /** Where the next capability goes. */
    private int nextFree = HEADER_END;
    /** Offset of the last extended capability, 0 when there is none. */
    private int lastExtended;
    /** Where the next extended capability goes. */
    private int nextFreeExtended = EXTENDED_START;

    /**
     * @param size {@link #SIZE} or {@link #EXTENDED_SIZE} bytes
     * @throws IllegalArgumentException for another size
     */
    public PciConfigSpace(int size) {
        if (size != SIZE && size != EXTENDED_SIZE) {
            throw new IllegalArgumentException("PCI config space size " + size + " is neither 256 nor 4096 bytes");
        }
        data = new byte[size];
        writable = new byte[size];
        w1c = new byte[size];
    }

    /** @return the size in bytes, 256 or 4096 */
    public int size() {
        return data.length;
    }

    /**
     * A guest read.
     *
     * @param offset byte offset into config space
     * @param size   1, 2 or 4 bytes, within the space
     * @return the little-endian value, zero-extended
     * @throws IllegalArgumentException if the access is out of range or of another size
     */
    public int read(int offset, int size) {
        check(offset, size);
        int v = 0;
        for (int i = 0; i < size; i++) {
            v |= (data[offset + i] & 0xFF) << (8 * i);
        }
        return v;
    }

    /**
     * A guest write, through the masks: RW bits take the new value, RW1C bits written as 1 clear, RO bits stay.
     *
     * @param offset byte offset into config space
     * @param size   1, 2 or 4 bytes, within the space
     * @param value  the value in the low {@code size} bytes
     * @throws IllegalArgumentException if the access is out of range or of another size
     */
    public void write(int offset, int size, int value) {
        check(offset, size);
        for (int i = 0; i < size; i++) {
            int at = offset + i;
            int b = (value >>> (8 * i)) & 0xFF;
            int rw = writable[at] & 0xFF;
            int clear = w1c[at] & 0xFF;
            int old = data[at] & 0xFF;
            data[at] = (byte) (((old & ~rw) | (b & rw)) & ~(b & clear));
        }
    }

    /** Sets a byte, ignoring the masks (the device model's view). */
    public void set8(int offset, int value) {
        setRaw(offset, 1, value);
    }

    /** Sets a little-endian 16-bit field, ignoring the masks. */
    public void set16(int offset, int value) {
        setRaw(offset, 2, value);
    }

    /** Sets a little-endian 32-bit field, ignoring the masks. */
    public void set32(int offset, int value) {
        setRaw(offset, 4, value);
    }

    /** @return the byte at {@code offset} */
    public int get8(int offset) {
        return read(offset, 1);
    }

    /** @return the 16-bit field at {@code offset} */
    public int get16(int offset) {
        return read(offset, 2);
    }

    /** @return the 32-bit field at {@code offset} */
    public int get32(int offset) {
        return read(offset, 4);
    }

    /** Declares which bits of the {@code size}-byte field at {@code offset} are RW (1) or RO (0). */
    public void setWritable(int offset, int size, int mask) {
        check(offset, size);
        for (int i = 0; i < size; i++) {
            writable[offset + i] = (byte) (mask >>> (8 * i));
        }
    }

    /** Declares which bits of the {@code size}-byte field at {@code offset} are RW1C. */
    public void setW1c(int offset, int size, int mask) {
        check(offset, size);
        for (int i = 0; i < size; i++) {
            w1c[offset + i] = (byte) (mask >>> (8 * i));
        }
    }

    /** @return the RW mask of the {@code size}-byte field at {@code offset} */
    public int writableMask(int offset, int size) {
        check(offset, size);
        int v = 0;
        for (int i = 0; i < size; i++) {
            v |= (writable[offset + i] & 0xFF) << (8 * i);
        }
        return v;
    }

    /**
     * Fills in the type 0 header's identity fields (PCI 3.0, 6.2.1) and the usual masks: command bits
     * I/O, memory, bus master, parity, SERR and INTx disable RW; the status error bits RW1C; the cache line
     * size, latency timer and interrupt line RW (scratch registers for software).
     *
     * @param classCode 24 bits: base class, sub-class, programming interface (e.g. 0x060000 for a host bridge)
     */
    public void initHeader(int vendorId, int deviceId, int revision, int classCode, int subsystemVendorId,
                           int subsystemId) {
        set16(VENDOR_ID, vendorId);
        set16(DEVICE_ID, deviceId);
        set8(REVISION_ID, revision);
        set8(CLASS_PROG, classCode);
        set16(CLASS_DEVICE, classCode >>> 8);
        set8(HEADER_TYPE, HEADER_TYPE_NORMAL);
        set16(SUBSYSTEM_VENDOR_ID, subsystemVendorId);
        set16(SUBSYSTEM_ID, subsystemId);
        setWritable(COMMAND, 2, COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_PARITY | COMMAND_SERR
                | COMMAND_INTX_DISABLE);
        setW1c(STATUS, 2, STATUS_ERRORS);
        setWritable(CACHE_LINE_SIZE, 1, 0xFF);
        setWritable(LATENCY_TIMER, 1, 0xFF);
        setWritable(INTERRUPT_LINE, 1, 0xFF);
    }

    /** @return the 24-bit class code: base class, sub-class, programming interface */
    public int classCode() {
        return get16(CLASS_DEVICE) << 8 | get8(CLASS_PROG);
    }

    /**
     * Appends a capability to the list (PCI 3.0, 6.7): puts {@code id} and a zero next pointer at a free
     * dword-aligned offset, the body after them, links the previous last capability (or the capabilities
     * pointer) to it and sets the status bit CAP_LIST. The body is read-only; the caller sets masks.
     *
     * @param id   capability id, e.g. {@link #CAP_ID_MSI}
     * @param body the bytes after the id and next pointer
     * @return the capability's offset in config space
     * @throws IllegalArgumentException if it does not fit below offset 0x100
     */
    public int addCapability(int id, byte[] body) {
        int offset = nextFree;
        int length = 2 + body.length;
        if (offset + length > SIZE) {
            throw new IllegalArgumentException(String.format(
                    "PCI capability 0x%02x (%d bytes) does not fit at 0x%02x", id, length, offset));
        }
        set8(offset, id);
        set8(offset + 1, 0);
        for (int i = 0; i < body.length; i++) {
            set8(offset + 2 + i, body[i]);
        }
        if (lastCapability == 0) {
            set8(CAPABILITY_LIST, offset);
        } else {
            set8(lastCapability + 1, offset);
        }
        lastCapability = offset;
        nextFree = (offset + length + 3) & ~3;
        set16(STATUS, get16(STATUS) | STATUS_CAP_LIST);
        return offset;
    }

    /** A capability as found by walking the list: its id and offset. */
    public record Capability(int id, int offset) {
    }

    /**
     * Walks the capability list as software does: from the capabilities pointer through the next pointers
     * (the low two bits of each pointer are reserved and ignored).
     *
     * @return the capabilities in list order; empty if status CAP_LIST is clear
     * @throws IllegalStateException if the list loops or points into the header
     */
    public List<Capability> capabilities() {
        var list = new ArrayList<Capability>();
        if ((get16(STATUS) & STATUS_CAP_LIST) == 0) {
            return list;
        }
        int at = get8(CAPABILITY_LIST) & ~3;
        while (at != 0) {
            if (at < HEADER_END || list.size() >= 48) {
                throw new IllegalStateException(String.format("PCI capability list is broken at 0x%02x", at));
            }
            list.add(new Capability(get8(at), at));
            at = get8(at + 1) & ~3;
        }
        return list;
    }

    /** @return the offset of the first capability with {@code id}, or -1 if none */
    public int findCapability(int id) {
        for (Capability c : capabilities()) {
            if (c.id() == id) {
                return c.offset();
            }
        }
        return -1;
    }

    /**
     * Appends a PCI Express extended capability (PCIe Base Spec 6.0, 7.6.3): a 32-bit header (id 15..0, version
     * 19..16, next offset 31..20, zero for the last) at the next free dword from 0x100, the body after it, and links
     * the previous extended capability to it. Without any, the dword at 0x100 reads 0: "no extended capabilities".
     * The body is read-only; the caller sets masks.
     *
     * @param id      extended capability id, e.g. {@link PciExpress#EXT_CAP_ID_DSN}
     * @param version capability version, 0..15
     * @param body    the bytes after the header
     * @return the capability's offset in config space
     * @throws IllegalArgumentException if the space has no extended part (256 bytes) or the capability does not fit
     */
    public int addExtendedCapability(int id, int version, byte[] body) {
        int offset = nextFreeExtended;
        if (data.length < EXTENDED_SIZE || offset + 4 + body.length > data.length) {
            throw new IllegalArgumentException(String.format(
                    "PCI extended capability 0x%04x (%d bytes) does not fit at 0x%03x of %d bytes of config space",
                    id, 4 + body.length, offset, data.length));
        }
        set32(offset, PciExpress.extCapHeader(id, version, 0));
        for (int i = 0; i < body.length; i++) {
            set8(offset + 4 + i, body[i]);
        }
        if (lastExtended != 0) {
            int h = get32(lastExtended);
            set32(lastExtended, PciExpress.extCapHeader(PciExpress.extCapId(h), PciExpress.extCapVersion(h), offset));
        }
        lastExtended = offset;
        nextFreeExtended = (offset + 4 + body.length + 3) & ~3;
        return offset;
    }

    /** An extended capability as found by walking the chain: its id, version and offset. */
    public record ExtendedCapability(int id, int version, int offset) {
    }

    /**
     * Walks the extended capability chain from 0x100 as software does (Linux's {@code pci_find_next_ext_capability}):
     * a header of 0 ends it, as does a next offset of 0.
     *
     * @return the extended capabilities in chain order; empty for a 256-byte space or an empty chain
     * @throws IllegalStateException if the chain loops or points below 0x100
     */
    public List<ExtendedCapability> extendedCapabilities() {
        var list = new ArrayList<ExtendedCapability>();
        if (data.length < EXTENDED_SIZE) {
            return list;
        }
        int at = EXTENDED_START;
        while (at != 0) {
            int h = get32(at);
            if (h == 0 && at == EXTENDED_START) {
                break;
            }
            if (at < EXTENDED_START || list.size() >= (EXTENDED_SIZE - EXTENDED_START) / 4) {
                throw new IllegalStateException(String.format("PCI extended capability chain is broken at 0x%03x", at));
            }
            list.add(new ExtendedCapability(PciExpress.extCapId(h), PciExpress.extCapVersion(h), at));
            at = PciExpress.extCapNext(h);
        }
        return list;
    }

    /** @return a copy of the whole space as it reads now ({@link #size()} bytes) */
    public byte[] snapshot() {
        return data.clone();
    }

    /**
     * Puts back what software may have changed: every RW and RW1C bit takes its value from {@code saved}, every
     * read-only bit keeps the value the device model gave it (a snapshot restores state, not identity).
     *
     * @param saved {@link #size()} bytes, as {@link #snapshot()} returned
     * @throws IllegalArgumentException for another length
     */
    public void restoreWritable(byte[] saved) {
        if (saved.length != data.length) {
            throw new IllegalArgumentException("saved config space is " + saved.length + " bytes, not " + data.length);
        }
        for (int i = 0; i < data.length; i++) {
            int mask = (writable[i] | w1c[i]) & 0xFF;
            data[i] = (byte) ((data[i] & ~mask) | (saved[i] & mask));
        }
    }

    private void setRaw(int offset, int size, int value) {
        check(offset, size);
        for (int i = 0; i < size; i++) {
            data[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    private void check(int offset, int size) {
        if ((size != 1 && size != 2 && size != 4) || offset < 0 || offset + size > data.length) {
            throw new IllegalArgumentException(String.format(
                    "PCI config access of %d bytes at 0x%x is outside %d bytes of config space", size, offset, data.length));
        }
    }
}
