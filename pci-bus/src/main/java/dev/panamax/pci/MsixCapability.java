package dev.panamax.pci;

import dev.panamax.core.bus.BusDevice;

/**
 * The MSI-X capability (PCI Local Bus Spec 3.0, 6.8.2) with its table and pending bit array in a memory BAR.
 *
 * <pre>
 * config space:  +0x00 id 0x11, next  +0x02 message control  +0x04 table offset | BIR  +0x08 PBA offset | BIR
 * table entry n at tableOffset + 16 n:  +0x0 message address  +0x4 upper address  +0x8 data  +0xC vector control
 * PBA at pbaOffset: bit n of qword n / 64 = vector n pending
 * </pre>
 *
 * Message control: bits 10..0 table size - 1 (RO), bit 14 function mask (RW), bit 15 MSI-X enable (RW).
 * Vector control bit 0 is the mask bit (set at reset); its other bits are reserved, read-only 0. The PBA is
 * read-only. Table and PBA take aligned 4 and 8-byte accesses (narrower ones work too); a table entry change
 * is reported to the {@link MsiListener} once the effective state (address, data, masked) differs.
 *
 * <p>This object is the {@link BusDevice} for the BAR: offsets are from the BAR's start; bytes outside the table
 * and PBA read as 0 and ignore writes.
 */
public final class MsixCapability implements BusDevice {
    public static final int FLAGS = 0x02;
    public static final int TABLE = 0x04;
    public static final int PBA = 0x08;
    public static final int FLAGS_QSIZE = 0x07FF;
    public static final int FLAGS_MASKALL = 0x4000;
    public static final int FLAGS_ENABLE = 0x8000;
    /** Bytes per table entry. */
    public static final int ENTRY_SIZE = 16;
    public static final int ENTRY_LOWER_ADDR = 0x0;
    public static final int ENTRY_UPPER_ADDR = 0x4;
    public static final int ENTRY_DATA = 0x8;
    public static final int ENTRY_VECTOR_CTRL = 0xC;
    public static final int ENTRY_CTRL_MASKBIT = 0x1;
    /** Most vectors MSI-X allows. */
    public static final int MAX_VECTORS = 2048;

    private final PciFunction function;
    private final PciConfigSpace config;
    private final int offset;
    private final int vectors;
    private final long tableOffset;
    private final long pbaOffset;
    private final MsiListener listener;
    /** The table, four dwords per entry. */
    private final int[] table;
    private final long[] pba;
    private final long[] address;
    private final int[] data;
    private final boolean[] masked;

    /**
     * Adds the capability to {@code function}'s config space. The caller declares BAR {@code bir} with this
     * object as its region (or forwards the table and PBA range to it).
     *
     * @param vectors     1..2048
     * @param bir         the BAR holding table and PBA, 0..5
     * @param tableOffset the table's offset in the BAR, 8-byte aligned
     * @param pbaOffset   the PBA's offset in the BAR, 8-byte aligned, not overlapping the table
     * @throws IllegalArgumentException if a value is out of range
     */
    public MsixCapability(PciFunction function, int vectors, int bir, long tableOffset, long pbaOffset,
                          MsiListener listener) {
        if (vectors < 1 || vectors > MAX_VECTORS || bir < 0 || bir > 5 || (tableOffset & 7) != 0 || (pbaOffset & 7) != 0
                || (tableOffset >>> 32) != 0 || (pbaOffset >>> 32) != 0) {
            throw new IllegalArgumentException(String.format(
                    "MSI-X: %d vectors in BAR %d, table at 0x%x, PBA at 0x%x is out of range", vectors, bir, tableOffset, pbaOffset));
        }
        if (pbaOffset < tableOffset + (long) vectors * ENTRY_SIZE && tableOffset < pbaOffset + pbaBytes(vectors)) {
            throw new IllegalArgumentException(String.format(
                    "MSI-X: table at 0x%x and PBA at 0x%x overlap", tableOffset, pbaOffset));
        }
        this.function = function;
        this.config = function.config();
        this.vectors = vectors;
        this.tableOffset = tableOffset;
        this.pbaOffset = pbaOffset;
        this.listener = listener;
        this.table = new int[vectors * 4];
        this.pba = new long[(vectors + 63) / 64];
        this.address = new long[vectors];
        this.data = new int[vectors];
        this.masked = new boolean[vectors];
        for (int v = 0; v < vectors; v++) {
            table[v * 4 + 3] = ENTRY_CTRL_MASKBIT;
            masked[v] = true;
        }
        synchronized (function.lock()) {
            offset = config.addCapability(PciConfigSpace.CAP_ID_MSIX, new byte[10]);
            config.set16(offset + FLAGS, vectors - 1);
            config.setWritable(offset + FLAGS, 2, FLAGS_MASKALL | FLAGS_ENABLE);
            config.set32(offset + TABLE, (int) tableOffset | bir);
            config.set32(offset + PBA, (int) pbaOffset | bir);
            function.addConfigWriteHook(offset + FLAGS, 2, this::updateAll);
        }
    }

    /**
     * A layout for a BAR holding only the MSI-X structures: table at 0, PBA at the next 4 KiB page (so a
     * passthrough can map them separately).
     *
     * @return the PBA offset for {@code vectors}
     */
    public static long dedicatedPbaOffset(int vectors) {
        return ((long) vectors * ENTRY_SIZE + 4095) & ~4095L;
    }

    /** @return the size of a BAR holding only table and PBA as {@link #dedicatedPbaOffset} lays them out */
    public static long dedicatedBarSize(int vectors) {
        long end = dedicatedPbaOffset(vectors) + pbaBytes(vectors);
        return Long.highestOneBit(end - 1) << 1;
    }

    /** @return the PBA's size in bytes: one bit per vector, in qwords */
    public static long pbaBytes(int vectors) {
        return (vectors + 63) / 64 * 8L;
    }

    /** @return the capability's offset in config space */
    public int offset() {
        return offset;
    }

    /** @return the number of table entries (vectors) */
    public int vectors() {
        return vectors;
    }

    /** @return true when MSI-X enable is set */
    public boolean enabled() {
        synchronized (function.lock()) {
            return (config.get16(offset + FLAGS) & FLAGS_ENABLE) != 0;
        }
    }

    /** @return true when the function mask is set */
    public boolean functionMasked() {
        synchronized (function.lock()) {
            return (config.get16(offset + FLAGS) & FLAGS_MASKALL) != 0;
        }
    }

    /** @return whether vector {@code vector}'s pending bit is set */
    public boolean pending(int vector) {
        synchronized (function.lock()) {
            return (pba[vector / 64] >>> (vector % 64) & 1) != 0;
        }
    }

    /**
     * The device signals vector {@code vector}: sends it if MSI-X is enabled, the function unmasked and the
     * entry unmasked; if masked, sets its pending bit, to be sent when unmasked (6.8.3.5). Dropped while
     * MSI-X is disabled.
     *
     * @return true if a message was sent
     * @throws IllegalArgumentException if there is no such vector
     */
    public boolean fire(int vector) {
        if (vector < 0 || vector >= vectors) {
            throw new IllegalArgumentException("MSI-X vector " + vector + " is not 0.." + (vectors - 1));
        }
        synchronized (function.lock()) {
            if (!enabled()) {
                return false;
            }
            if (functionMasked() || (table[vector * 4 + 3] & ENTRY_CTRL_MASKBIT) != 0) {
                pba[vector / 64] |= 1L << (vector % 64);
                return false;
            }
            listener.onMessage(vector, entryAddress(vector), table[vector * 4 + 2]);
            return true;
        }
    }

    /**
     * @return a copy of the table as the guest wrote it: four dwords per entry (message address, upper address, data,
     *         vector control), {@code 4 * vectors()} in all; for a snapshot, taken with the vCPUs paused
     */
    public int[] tableWords() {
        synchronized (function.lock()) {
            return table.clone();
        }
    }

    /**
     * Puts a table from {@link #tableWords} back, before any vCPU runs, without telling the listener: the caller then
     * re-runs the config write hooks ({@link PciFunction#applyConfigState}), whose message control hook reports every
     * entry whose effective state differs from the reset one, so routes are rebuilt through the usual path.
     *
     * @throws IllegalArgumentException if {@code words} is not {@code 4 * vectors()} long or a vector control dword
     *         has a reserved bit set (6.8.2.9: only bit 0 is defined); the table is then unchanged
     */
    public void restoreTableWords(int[] words) {
        if (words.length != table.length) {
            throw new IllegalArgumentException("MSI-X table of " + words.length / 4 + " entries, this one has " + vectors);
        }
        for (int v = 0; v < vectors; v++) {
            if ((words[v * 4 + 3] & ~ENTRY_CTRL_MASKBIT) != 0) {
                throw new IllegalArgumentException(String.format("MSI-X entry %d: vector control 0x%08x has reserved bits set",
                        v, words[v * 4 + 3]));
            }
        }
        synchronized (function.lock()) {
            System.arraycopy(words, 0, table, 0, table.length);
        }
    }

    @Override
    public long read(long barOffset, int size) {
        synchronized (function.lock()) {
            long v = 0;
            for (int i = 0; i < size; i++) {
                v |= (long) byteAt(barOffset + i) << (8 * i);
            }
            return v;
        }
    }

    @Override
    public void write(long barOffset, int size, long value) {
        synchronized (function.lock()) {
            long tableEnd = tableOffset + (long) vectors * ENTRY_SIZE;
            int first = -1;
            int last = -1;
            for (int i = 0; i < size; i++) {
                long at = barOffset + i;
                if (at < tableOffset || at >= tableEnd) {
                    continue; // the PBA and the rest of the BAR are read-only here
                }
                long rel = at - tableOffset;
                int word = (int) (rel / 4);
                int shift = (int) (rel % 4) * 8;
                int b = (int) (value >>> (8 * i)) & 0xFF;
                if (word % 4 == 3) {
                    b &= shift == 0 ? ENTRY_CTRL_MASKBIT : 0; // vector control: only the mask bit is writable
                }
                table[word] = (table[word] & ~(0xFF << shift)) | b << shift;
                int entry = word / 4;
                first = first < 0 ? entry : first;
                last = entry;
            }
            for (int v = first; v >= 0 && v <= last; v++) {
                update(v);
            }
        }
    }

    private int byteAt(long at) {
        if (at >= tableOffset && at < tableOffset + (long) vectors * ENTRY_SIZE) {
            long rel = at - tableOffset;
            return table[(int) (rel / 4)] >>> ((int) (rel % 4) * 8) & 0xFF;
        }
        if (at >= pbaOffset && at < pbaOffset + pbaBytes(vectors)) {
            long rel = at - pbaOffset;
            return (int) (pba[(int) (rel / 8)] >>> ((int) (rel % 8) * 8)) & 0xFF;
        }
        return 0;
    }

    private long entryAddress(int v) {
        return Integer.toUnsignedLong(table[v * 4]) | Integer.toUnsignedLong(table[v * 4 + 1]) << 32;
    }

    private void updateAll() {
        for (int v = 0; v < vectors; v++) {
            update(v);
        }
    }

    /** Reports entry {@code v} if its effective state changed, and sends its pending message if now unmasked. */
    private void update(int v) {
        long a = entryAddress(v);
        int d = table[v * 4 + 2];
        boolean m = !enabled() || functionMasked() || (table[v * 4 + 3] & ENTRY_CTRL_MASKBIT) != 0;
        if (a != address[v] || d != data[v] || m != masked[v]) {
            address[v] = a;
            data[v] = d;
            masked[v] = m;
            listener.onVectorChanged(v, a, d, m);
        }
        if (!m && (pba[v / 64] >>> (v % 64) & 1) != 0) {
            pba[v / 64] &= ~(1L << (v % 64));
            listener.onMessage(v, a, d);
        }
    }
}
