package dev.panamax.core.bus;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * An address decoder: port I/O (the 64 KiB x86 I/O space) or MMIO (guest-physical addresses that
 * trap). Devices register a range; an access is routed to the device whose range holds it, with the
 * offset into that range. An access no device claims reads as all ones and is dropped when
 * written, as on a real bus with nothing answering.
 *
 * <p>Lookup is a binary search over an immutable snapshot, without locks or allocation, so vCPU
 * threads dispatch exits concurrently. Every access is logged at TRACE level (logger
 * {@code dev.panamax.trace.pio} or {@code .mmio}) for {@code --trace}, with the register's name when the
 * device gives one ({@link BusDevice#describe}); the check costs one branch when off, and no string is built.
 *
 * <p>Each registration gets an id, unique in this bus for its life ({@link Mapping#id()}), so that a caller
 * can count accesses per device in a {@link BusCounts} of its own (one per vCPU thread: plain longs, no lock)
 * and name them later ({@link #nameOf(int)}), even after the range was moved or removed.
 */
public final class Bus {
    /**
     * One registered range.
     *
     * @param id this registration's number in the bus, from 0 (see {@link #nameOf(int)})
     */
    public record Mapping(long base, long length, String name, BusDevice device, int id) {
        public long end() {
            return base + length;
        }
    }

    private final String name;
    private final Logger trace;
    /** The ranges sorted by base, and their bases alone for the binary search; replaced whole on change. */
    private record Table(long[] bases, Mapping[] mappings) {
    }

    private volatile Table table = new Table(new long[0], new Mapping[0]);
    /** The name of each registration, by id; only grows. Guarded by this. */
    private final List<String> names = new ArrayList<>();

    /** @param name {@code "pio"} or {@code "mmio"}; names the trace logger too */
    public Bus(String name) {
        this.name = name;
        this.trace = LoggerFactory.getLogger("dev.panamax.trace." + name);
    }

    /** @return {@code "pio"} or {@code "mmio"} */
    public String name() {
        return name;
    }

    /**
     * Routes {@code [base, base + length)} to {@code device}.
     *
     * @throws IllegalArgumentException if it overlaps a range already registered
     */
    public synchronized void register(long base, long length, String deviceName, BusDevice device) {
        if (length <= 0) {
            throw new IllegalArgumentException(name + ": " + deviceName + " has empty range");
        }
        for (Mapping m : table.mappings()) {
            if (base < m.end() && m.base() < base + length) {
                throw new IllegalArgumentException(String.format("%s: %s [0x%x, +0x%x) overlaps %s [0x%x, +0x%x)",
                        name, deviceName, base, length, m.name(), m.base(), m.length()));
            }
        }
        List<Mapping> next = new ArrayList<>(Arrays.asList(table.mappings()));
        next.add(new Mapping(base, length, deviceName, device, names.size()));
        names.add(deviceName);
        publish(next);
    }

    /** Removes the range starting at {@code base}; does nothing if there is none. */
    public synchronized void unregister(long base) {
        List<Mapping> next = new ArrayList<>(Arrays.asList(table.mappings()));
        next.removeIf(m -> m.base() == base);
        publish(next);
    }

    /**
     * @param id a {@link Mapping#id()} of this bus, current or past
     * @return the device name it was registered with
     * @throws IndexOutOfBoundsException if no registration had that id
     */
    public synchronized String nameOf(int id) {
        return names.get(id);
    }

    private void publish(List<Mapping> next) {
        next.sort(Comparator.comparingLong(Mapping::base));
        Mapping[] m = next.toArray(new Mapping[0]);
        long[] b = new long[m.length];
        for (int i = 0; i < m.length; i++) {
            b[i] = m[i].base();
        }
        table = new Table(b, m);
    }

    /** @return the mapping holding {@code address}, or {@code null} */
    public Mapping find(long address) {
        Table t = table;
        Mapping[] m = t.mappings();
        int i = Arrays.binarySearch(t.bases(), address);
        if (i < 0) {
            i = -i - 2; // the last base below address
        }
        if (i >= 0 && address < m[i].end()) {
            return m[i];
        }
        return null;
    }

    /**
     * One read access.
     *
     * @param address port number or guest-physical address
     * @param size    1, 2, 4 or 8 bytes
     * @return the value, or all ones in {@code size} bytes if no device claims the address
     */
    public long read(long address, int size) {
        return read(address, size, null);
    }

    /**
     * {@link #read(long, int)}, counted in {@code counts} (the caller's own: no lock is taken).
     *
     * @param counts where to count the access by device, or null
     */
    public long read(long address, int size, BusCounts counts) {
        Mapping m = find(address);
        if (counts != null) {
            counts.count(m);
        }
        long value = m == null ? ones(size) : m.device().read(address - m.base(), size);
        if (trace.isTraceEnabled()) {
            trace.trace("{} read  {}{} size {} -> {}", name, hex(address), where(m, address, size, false, value), size,
                    hex(value & ones(size)));
        }
        return value;
    }

    /**
     * One write access; dropped if no device claims the address.
     *
     * @param address port number or guest-physical address
     * @param size    1, 2, 4 or 8 bytes
     * @param value   the value in the low {@code size} bytes
     */
    public void write(long address, int size, long value) {
        write(address, size, value, null);
    }

    /**
     * {@link #write(long, int, long)}, counted in {@code counts} (the caller's own: no lock is taken).
     *
     * @param counts where to count the access by device, or null
     */
    public void write(long address, int size, long value, BusCounts counts) {
        Mapping m = find(address);
        if (counts != null) {
            counts.count(m);
        }
        if (trace.isTraceEnabled()) {
            trace.trace("{} write {}{} size {} <- {}", name, hex(address), where(m, address, size, true, value), size,
                    hex(value & ones(size)));
        }
        if (m != null) {
            m.device().write(address - m.base(), size, value);
        }
    }

    /** @return the registered ranges, by base address */
    public List<Mapping> mappings() {
        return List.of(table.mappings());
    }

    /** " (com1+0x5 LSR)": the device, the offset, and the register if the device names it. */
    static String where(Mapping m, long address, int size, boolean write, long value) {
        if (m == null) {
            return " (unclaimed)";
        }
        long offset = address - m.base();
        String register;
        try {
            register = m.device().describe(offset, size, write, value & ones(size));
        } catch (RuntimeException e) {
            register = "? (" + e + ")"; // tracing must never break the access
        }
        return " (" + m.name() + "+" + hex(offset) + (register == null ? "" : " " + register) + ")";
    }

    private static String hex(long v) {
        return "0x" + Long.toHexString(v);
    }

    /** @return a long with the low {@code size} bytes all ones */
    public static long ones(int size) {
        return size >= 8 ? -1L : (1L << (size * 8)) - 1;
    }
}
