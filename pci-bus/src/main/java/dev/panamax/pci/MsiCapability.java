package dev.panamax.pci;

/**
 * The MSI capability (PCI Local Bus Spec 3.0, 6.8.1), 64-bit address, with optional per-vector masking:
 *
 * <pre>
 * +0x00 id 0x05, next      +0x02 message control
 * +0x04 message address    +0x08 message upper address
 * +0x0C message data       (+0x10 mask bits, +0x14 pending bits: with per-vector masking)
 * </pre>
 *
 * Message control: bit 0 MSI enable (RW), bits 3..1 multiple message capable (RO, log2 of the vectors),
 * bits 6..4 multiple message enable (RW), bit 7 64-bit address capable (RO, 1), bit 8 per-vector masking
 * capable (RO). With n vectors enabled, vector i sends the data with its low log2(n) bits replaced by i.
 * The state lives in config space; {@link MsiListener} hears of every change.
 */
public final class MsiCapability {
    public static final int FLAGS = 0x02;
    public static final int ADDRESS_LO = 0x04;
    public static final int ADDRESS_HI = 0x08;
    public static final int DATA_64 = 0x0C;
    public static final int MASK_64 = 0x10;
    public static final int PENDING_64 = 0x14;
    public static final int FLAGS_ENABLE = 0x0001;
    public static final int FLAGS_QMASK = 0x000E;
    public static final int FLAGS_QSIZE = 0x0070;
    public static final int FLAGS_64BIT = 0x0080;
    public static final int FLAGS_MASKBIT = 0x0100;

    private final PciFunction function;
    private final PciConfigSpace config;
    private final int offset;
    private final int vectors;
    private final boolean perVectorMask;
    private final MsiListener listener;
    private final long[] address;
    private final int[] data;
    private final boolean[] masked;

    /**
     * Adds the capability to {@code function}'s config space.
     *
     * @param vectors       1, 2, 4, 8, 16 or 32
     * @param perVectorMask whether it has mask and pending bits
     * @throws IllegalArgumentException for another vector count
     */
    public MsiCapability(PciFunction function, int vectors, boolean perVectorMask, MsiListener listener) {
        if (vectors < 1 || vectors > 32 || Integer.bitCount(vectors) != 1) {
            throw new IllegalArgumentException("MSI vector count " + vectors + " is not a power of two 1..32");
        }
        this.function = function;
        this.config = function.config();
        this.vectors = vectors;
        this.perVectorMask = perVectorMask;
        this.listener = listener;
        this.address = new long[vectors];
        this.data = new int[vectors];
        this.masked = new boolean[vectors];
        java.util.Arrays.fill(masked, true);
        int length = perVectorMask ? 0x18 : 0x0E;
        synchronized (function.lock()) {
            offset = config.addCapability(PciConfigSpace.CAP_ID_MSI, new byte[length - 2]);
            int log2 = Integer.numberOfTrailingZeros(vectors);
            config.set16(offset + FLAGS, log2 << 1 | FLAGS_64BIT | (perVectorMask ? FLAGS_MASKBIT : 0));
            config.setWritable(offset + FLAGS, 2, FLAGS_ENABLE | FLAGS_QSIZE);
            config.setWritable(offset + ADDRESS_LO, 4, 0xFFFF_FFFC);
            config.setWritable(offset + ADDRESS_HI, 4, 0xFFFF_FFFF);
            config.setWritable(offset + DATA_64, 2, 0xFFFF);
            if (perVectorMask) {
                config.setWritable(offset + MASK_64, 4, (int) ((1L << vectors) - 1));
            }
            function.addConfigWriteHook(offset, length, this::update);
        }
    }

    /** @return the capability's offset in config space */
    public int offset() {
        return offset;
    }

    /** @return true when software has set MSI enable */
    public boolean enabled() {
        synchronized (function.lock()) {
            return (config.get16(offset + FLAGS) & FLAGS_ENABLE) != 0;
        }
    }

    /** @return the number of vectors software enabled (multiple message enable), capped at the capable count */
    public int enabledVectors() {
        synchronized (function.lock()) {
            return Math.min(vectors, 1 << ((config.get16(offset + FLAGS) & FLAGS_QSIZE) >>> 4));
        }
    }

    /**
     * The device signals vector {@code vector}: sends it if MSI is enabled, the vector is within the enabled
     * count and unmasked; sets its pending bit if only its mask bit stops it; otherwise drops it.
     *
     * @return true if a message was sent
     */
    public boolean fire(int vector) {
        synchronized (function.lock()) {
            if (!enabled() || vector < 0 || vector >= enabledVectors()) {
                return false;
            }
            if (maskBit(vector)) {
                config.set32(offset + PENDING_64, config.get32(offset + PENDING_64) | 1 << vector);
                return false;
            }
            listener.onMessage(vector, address[vector], data[vector]);
            return true;
        }
    }

    /** @return the pending bits (0 without per-vector masking) */
    public int pendingBits() {
        synchronized (function.lock()) {
            return perVectorMask ? config.get32(offset + PENDING_64) : 0;
        }
    }

    private boolean maskBit(int vector) {
        return perVectorMask && (config.get32(offset + MASK_64) >>> vector & 1) != 0;
    }

    /** After a config write to the capability: report changed vectors, send pending ones now unmasked. */
    private void update() {
        boolean enable = enabled();
        int count = enabledVectors();
        long addr = Integer.toUnsignedLong(config.get32(offset + ADDRESS_LO))
                | Integer.toUnsignedLong(config.get32(offset + ADDRESS_HI)) << 32;
        int baseData = config.get16(offset + DATA_64);
        for (int v = 0; v < vectors; v++) {
            int d = (baseData & ~(count - 1)) | (v & (count - 1));
            boolean m = !enable || v >= count || maskBit(v);
            if (addr != address[v] || d != data[v] || m != masked[v]) {
                address[v] = addr;
                data[v] = d;
                masked[v] = m;
                listener.onVectorChanged(v, addr, d, m);
            }
            if (!m && perVectorMask && (config.get32(offset + PENDING_64) >>> v & 1) != 0) {
                config.set32(offset + PENDING_64, config.get32(offset + PENDING_64) & ~(1 << v));
                listener.onMessage(v, addr, d);
            }
        }
    }
}
