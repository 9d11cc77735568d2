package dev.panamax.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.panamax.firmware.E820Map.Entry;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class E820MapTest {
    private static final long MiB = 1L << 20;
    private static final long GiB = 1L << 30;

    @Test
    void smallGuestHasNoHighRange() {
        E820Map map = E820Map.x86(512 * MiB, 0);
        assertEquals(List.of(
                new Entry(0, 0x9FC00, 1),
                new Entry(0x9FC00, 0x400, 2),
                new Entry(0xE0000, 0x20000, 2),
                new Entry(0x100000, 512 * MiB - 0x100000, 1)), map.entries());
        assertEquals(512 * MiB, map.entries().get(3).end());
    }

    @Test
    void largeGuestIsSplitAroundThePciHole() {
        // A 6 GiB guest: the caller puts 3 GiB below the hole at 0xC0000000 and 3 GiB from 4 GiB.
        E820Map map = E820Map.x86(0xC0000000L, 3 * GiB);
        assertEquals(5, map.entries().size());
        assertEquals(new Entry(0x100000, 0xC0000000L - 0x100000, E820Map.RAM), map.entries().get(3));
        assertEquals(new Entry(0x100000000L, 3 * GiB, E820Map.RAM), map.entries().get(4));
        long ram = map.entries().stream().filter(e -> e.type() == E820Map.RAM).mapToLong(Entry::size).sum();
        assertEquals(6 * GiB - 0x400 - 0x60000, ram);   // less the EBDA and 0xA0000..0x100000
    }

    @Test
    void reservesTheEcamWindowInTheHole() {
        E820Map map = E820Map.x86(0xC0000000L, 3 * GiB).withReserved(0xE0000000L, 256 * MiB);
        assertEquals(6, map.entries().size());
        assertEquals(new Entry(0xE0000000L, 256 * MiB, E820Map.RESERVED), map.entries().get(4));
        assertEquals(new Entry(0x100000000L, 3 * GiB, E820Map.RAM), map.entries().get(5));
        assertThrows(IllegalArgumentException.class,
                () -> E820Map.x86(0xC0000000L, 0).withReserved(0xB0000000L, 256 * MiB));   // over RAM
    }

    @Test
    void writesTheZeroPageFieldsAtTheirOffsets() {
        E820Map map = E820Map.x86(0xC0000000L, 3 * GiB);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment zp = arena.allocate(4096);
            map.writeTo(zp);
            assertEquals(5, Le.u8(zp, 0x1E8));              // e820_entries
            // e820_table at 0x2D0, 20 bytes per packed struct boot_e820_entry { u64 addr; u64 size; u32 type; }
            assertEquals(0x9FC00, Le.u64(zp, 0x2D0 + 20 + 0));
            assertEquals(0x400, Le.u64(zp, 0x2D0 + 20 + 8));
            assertEquals(2, Le.u32(zp, 0x2D0 + 20 + 16));
            assertEquals(0x100000000L, Le.u64(zp, 0x2D0 + 4 * 20));
            assertEquals(3 * GiB, Le.u64(zp, 0x2D0 + 4 * 20 + 8));
            assertEquals(1, Le.u32(zp, 0x2D0 + 4 * 20 + 16));
            assertEquals(0, Le.u64(zp, 0x2D0 + 5 * 20));    // nothing after the last entry
            assertEquals(map, E820Map.readFrom(zp));
        }
    }

    @Test
    void holds128EntriesAndNoMore() {
        var list = new ArrayList<Entry>();
        for (int i = 0; i < 128; i++) {
            list.add(new Entry(i * 0x2000L, 0x1000, E820Map.RAM));
        }
        E820Map full = new E820Map(list);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment zp = arena.allocate(4096);
            full.writeTo(zp);
            assertEquals(128, Le.u8(zp, 0x1E8));
            assertEquals(full, E820Map.readFrom(zp));
        }
        list.add(new Entry(128 * 0x2000L, 0x1000, E820Map.RAM));
        assertThrows(IllegalArgumentException.class, () -> new E820Map(list));
    }

    @Test
    void rejectsBadRanges() {
        assertThrows(IllegalArgumentException.class, () -> E820Map.x86(0x100000, 0));
        assertThrows(IllegalArgumentException.class, () -> E820Map.x86((1L << 32) + 4096, 0));
        assertThrows(IllegalArgumentException.class, () -> E820Map.x86(512 * MiB, -1));
        assertThrows(IllegalArgumentException.class,
                () -> new E820Map(List.of(new Entry(0, 0x2000, 1), new Entry(0x1000, 0x1000, 1))));
        assertThrows(IllegalArgumentException.class, () -> new E820Map(List.of(new Entry(0, 0, 1))));
    }
}
