package dev.panamax.vfiouser.server;

/**
 * A device's PCI configuration space as bytes with a write mask (PCI Local Bus Specification 3.0,
 * 6.1 "Configuration Space Organization"): a client write changes only the bits set in the mask,
 * {@code new = (old & ~mask) | (data & mask)}. Served as region {@link VfioUserRegion#CONFIG}.
 * BARs are sized the hardware way: the mask of a BAR of {@code size} bytes clears the low
 * address bits, so writing all ones reads back {@code ~(size - 1)} with the type bits.
 * Thread-safe: reads and writes are atomic with respect to each other.
 */
public final class PciConfigSpace implements RegionHandler {
    /** Bytes of conventional PCI configuration space. */
    public static final int SIZE = 256;
    public static final int VENDOR_ID = 0x00;
    public static final int DEVICE_ID = 0x02;
    public static final int COMMAND = 0x04;
    public static final int STATUS = 0x06;
    public static final int REVISION_ID = 0x08;
    public static final int CLASS_CODE = 0x09;
    public static final int HEADER_TYPE = 0x0E;
    public static final int BAR0 = 0x10;
    public static final int SUBSYSTEM_VENDOR_ID = 0x2C;
    public static final int SUBSYSTEM_ID = 0x2E;
    public static final int CAPABILITIES_POINTER = 0x34;
    public static final int INTERRUPT_LINE = 0x3C;
    public static final int INTERRUPT_PIN = 0x3D;
    /** Status bit 4: the capabilities list exists. */
    public static final int STATUS_CAPABILITIES_LIST = 1 << 4;
    /** Command bits a driver may change: I/O, memory, bus master, parity, SERR#, INTx disable. */
    public static final int COMMAND_WRITABLE = 0x0547;
    /** BAR bit 0: I/O space; bits 2:1 = 2: 64-bit memory; bit 3: prefetchable. */
    public static final int BAR_IO = 0x1;
    public static final int BAR_MEM64 = 0x4;
    public static final int BAR_PREFETCH = 0x8;

    private final byte[] bytes = new byte[SIZE];
    private final byte[] mask = new byte[SIZE];
    private int nextCapability = 0x40;
    private int lastCapabilityNext = CAPABILITIES_POINTER;
    private volatile Window window;

    /**
     * Device behaviour behind a range of configuration space (e.g. a data register that reaches
     * a BAR, virtio 1.x 4.1.4.7): called on the accessing thread, outside this object's lock, so
     * it may use {@link #get} and {@link #put}.
     */
    public interface AccessHook {
        /** Before a read that touches the range is served from the bytes: update them. */
        void beforeRead();

        /** After a write that touches the range has been stored (through the mask): act on it. */
        void afterWrite();
    }

    private record Window(int offset, int length, AccessHook hook) {
        boolean touches(long at, int count) {
            return at < offset + length && offset < at + count;
        }
    }

    /**
     * A type 0 header.
     *
     * @param vendorId  PCI vendor ID
     * @param deviceId  PCI device ID
     * @param classCode 24 bits: base class, sub-class, programming interface (e.g. 0x010802 NVMe)
     * @param revision  revision ID
     */
    public PciConfigSpace(int vendorId, int deviceId, int classCode, int revision) {
        put(VENDOR_ID, 2, vendorId);
        put(DEVICE_ID, 2, deviceId);
        put(REVISION_ID, 1, revision);
        put(CLASS_CODE, 3, classCode);
        setMask(COMMAND, 2, COMMAND_WRITABLE);
        setMask(INTERRUPT_LINE, 1, 0xFF);
    }

    /** Sets {@code width} (1, 2, 4) little-endian bytes at {@code offset}, whatever the mask. */
    public synchronized void put(int offset, int width, long value) {
        check(offset, width);
        for (int i = 0; i < width; i++) {
            bytes[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    /** @return {@code width} (1..8) little-endian bytes at {@code offset} */
    public synchronized long get(int offset, int width) {
        check(offset, width);
        long v = 0;
        for (int i = 0; i < width; i++) {
            v |= (bytes[offset + i] & 0xFFL) << (8 * i);
        }
        return v;
    }

    /** Sets the write mask of {@code width} bytes at {@code offset}: 1 bits are writable by the client. */
    public synchronized void setMask(int offset, int width, long writable) {
        check(offset, width);
        for (int i = 0; i < width; i++) {
            mask[offset + i] = (byte) (writable >>> (8 * i));
        }
    }

    /** Sets the subsystem vendor and subsystem IDs. */
    public void setSubsystem(int subsystemVendorId, int subsystemId) {
        put(SUBSYSTEM_VENDOR_ID, 2, subsystemVendorId);
        put(SUBSYSTEM_ID, 2, subsystemId);
    }

    /** Sets the interrupt pin (1 = INTA# .. 4 = INTD#, 0 none). */
    public void setInterruptPin(int pin) {
        put(INTERRUPT_PIN, 1, pin);
    }

    /**
     * Declares BAR {@code bar} (0..5) of {@code size} bytes (a power of two, at least 16 for
     * memory, 4 for I/O) with type bits {@code type} ({@link #BAR_IO}, or memory with
     * {@link #BAR_MEM64} / {@link #BAR_PREFETCH}). A 64-bit BAR also takes BAR {@code bar + 1}.
     */
    public synchronized void setBar(int bar, long size, int type) {
        boolean io = (type & BAR_IO) != 0;
        boolean mem64 = !io && (type & BAR_MEM64) != 0;
        if (bar < 0 || bar > 5 || (mem64 && bar == 5)) {
            throw new IllegalArgumentException("BAR " + bar + (mem64 ? " cannot be 64-bit" : " is not 0..5"));
        }
        if (Long.bitCount(size) != 1 || size < (io ? 4 : 16)) {
            throw new IllegalArgumentException("BAR " + bar + " size " + size + " is not a power of two of at least " + (io ? 4 : 16));
        }
        long addressMask = ~(size - 1) & (io ? ~0x3L : ~0xFL);
        put(BAR0 + 4 * bar, 4, type & (io ? 0x1 : 0xF));
        setMask(BAR0 + 4 * bar, 4, addressMask & 0xFFFFFFFFL);
        if (mem64) {
            put(BAR0 + 4 * (bar + 1), 4, 0);
            setMask(BAR0 + 4 * (bar + 1), 4, addressMask >>> 32);
        }
    }

    /**
     * Appends a capability to the list (PCI 3.0, 6.7 "Capabilities List"): ID, next pointer, then
     * {@code body} (the bytes after those two), with {@code bodyWriteMask} for them.
     *
     * @return the capability's offset in configuration space
     */
    public synchronized int addCapability(int id, byte[] body, byte[] bodyWriteMask) {
        if (bodyWriteMask.length != body.length) {
            throw new IllegalArgumentException("capability " + id + " mask has " + bodyWriteMask.length + " bytes, body " + body.length);
        }
        int at = nextCapability;
        int length = (2 + body.length + 3) & ~3;
        if (at + length > SIZE) {
            throw new IllegalArgumentException("capability " + id + " of " + length + " bytes does not fit after 0x" + Integer.toHexString(at));
        }
        bytes[at] = (byte) id;
        bytes[at + 1] = 0;
        System.arraycopy(body, 0, bytes, at + 2, body.length);
        System.arraycopy(bodyWriteMask, 0, mask, at + 2, body.length);
        bytes[lastCapabilityNext] = (byte) at;
        lastCapabilityNext = at + 1;
        nextCapability = at + length;
        put(STATUS, 2, get(STATUS, 2) | STATUS_CAPABILITIES_LIST);
        return at;
    }

    /**
     * Calls {@code hook} around client accesses that touch {@code length} bytes at {@code offset}
     * (one range per configuration space; a later call replaces it).
     */
    public void setAccessHook(int offset, int length, AccessHook hook) {
        check(offset, length);
        window = new Window(offset, length, hook);
    }

    @Override
    public void read(long offset, byte[] into) {
        Window w = window;
        if (w != null && w.touches(offset, into.length)) {
            w.hook().beforeRead();
        }
        synchronized (this) {
            System.arraycopy(bytes, (int) offset, into, 0, into.length);
        }
    }

    @Override
    public void write(long offset, byte[] data) {
        synchronized (this) {
            for (int i = 0; i < data.length; i++) {
                int at = (int) offset + i;
                bytes[at] = (byte) ((bytes[at] & ~mask[at]) | (data[i] & mask[at]));
            }
        }
        Window w = window;
        if (w != null && w.touches(offset, data.length)) {
            w.hook().afterWrite();
        }
    }

    private static void check(int offset, int width) {
        if (width < 1 || width > 8 || offset < 0 || offset + width > SIZE) {
            throw new IllegalArgumentException("config space access of " + width + " bytes at 0x" + Integer.toHexString(offset) + " lies outside 256 bytes");
        }
    }
}
