package dev.panamax.core;

import dev.panamax.core.memory.AddressSpace;
import dev.panamax.core.memory.MemoryListener;
import dev.panamax.core.memory.MemoryRegion;
import dev.panamax.core.memory.MmioRegion;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link AddressSpace#add} and {@link AddressSpace#addListener} are all or nothing when a listener refuses. */
class AddressSpaceListenerTest {
    /**
     * Records what it holds in one shared journal; refuses the regions named in {@code refuse}, and may fail to
     * remove the regions named in {@code failRemove}.
     */
    static final class Listener implements MemoryListener {
        final String name;
        final List<String> journal;
        final Set<String> refuse;
        final Set<String> failRemove;
        final List<String> holds = new ArrayList<>();

        Listener(String name, List<String> journal, Set<String> refuse, Set<String> failRemove) {
            this.name = name;
            this.journal = journal;
            this.refuse = refuse;
            this.failRemove = failRemove;
        }

        @Override
        public void regionAdded(MemoryRegion r) {
            if (refuse.contains(r.name())) {
                throw new IllegalStateException(name + " refuses " + r.name());
            }
            holds.add(r.name());
            journal.add(name + "+" + r.name());
        }

        @Override
        public void regionRemoved(MemoryRegion r) {
            if (failRemove.contains(r.name())) {
                throw new IllegalStateException(name + " cannot remove " + r.name());
            }
            assertTrue(holds.remove(r.name()), name + " was told to remove " + r.name() + ", which it never held");
            journal.add(name + "-" + r.name());
        }
    }

    static MemoryRegion region(String name, long gpa) {
        return new MmioRegion(name, gpa, 0x1000);
    }

    @Test
    void aRefusedRegionIsUndoneInTheListenersThatAcceptedIt() {
        List<String> journal = new ArrayList<>();
        AddressSpace space = new AddressSpace();
        Listener a = new Listener("a", journal, Set.of(), Set.of());
        Listener b = new Listener("b", journal, Set.of(), Set.of());
        Listener c = new Listener("c", journal, Set.of("bar"), Set.of());
        Listener d = new Listener("d", journal, Set.of(), Set.of());
        space.addListener(a);
        space.addListener(b);
        space.addListener(c);
        space.addListener(d);
        space.add(region("foo", 0x1000));
        journal.clear();

        MemoryRegion bar = region("bar", 0x2000);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> space.add(bar));
        assertEquals("c refuses bar", e.getMessage());
        assertEquals(List.of("a+bar", "b+bar", "b-bar", "a-bar"), journal, "undone in reverse order; d never heard of it");
        assertEquals(List.of("foo"), space.regions().stream().map(MemoryRegion::name).toList());
        assertEquals(List.of("foo"), a.holds);
        assertEquals(List.of("foo"), d.holds);

        // Nothing of the refused region is left: the same range takes another region that c accepts.
        space.add(region("baz", 0x2000));
        assertEquals(List.of("foo", "baz"), c.holds);
    }

    @Test
    void anUndoThatFailsIsSuppressedAndTheOthersStillUndo() {
        List<String> journal = new ArrayList<>();
        AddressSpace space = new AddressSpace();
        Listener a = new Listener("a", journal, Set.of(), Set.of());
        Listener b = new Listener("b", journal, Set.of(), Set.of("bar"));
        Listener c = new Listener("c", journal, Set.of("bar"), Set.of());
        space.addListener(a);
        space.addListener(b);
        space.addListener(c);

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> space.add(region("bar", 0x2000)));
        assertEquals("c refuses bar", e.getMessage());
        assertEquals(1, e.getSuppressed().length);
        assertEquals("b cannot remove bar", e.getSuppressed()[0].getMessage());
        assertEquals(List.of("a+bar", "b+bar", "a-bar"), journal);
        assertTrue(space.regions().isEmpty());
    }

    @Test
    void aListenerThatRefusesDuringReplayGivesBackWhatItAcceptedAndIsNotAdded() {
        List<String> journal = new ArrayList<>();
        AddressSpace space = new AddressSpace();
        space.add(region("r1", 0x1000));
        space.add(region("r2", 0x2000));
        space.add(region("r3", 0x3000));
        space.add(region("r4", 0x4000));
        Listener late = new Listener("late", journal, Set.of("r3"), Set.of());

        IllegalStateException e = assertThrows(IllegalStateException.class, () -> space.addListener(late));
        assertEquals("late refuses r3", e.getMessage());
        assertEquals(List.of("late+r1", "late+r2", "late-r2", "late-r1"), journal);
        assertTrue(late.holds.isEmpty());

        // Not added: later changes do not reach it, and removing it tells it nothing.
        journal.clear();
        space.add(region("r5", 0x5000));
        space.removeListener(late);
        assertEquals(List.of(), journal);
    }

    @Test
    void anErrorIsUndoneAsAnExceptionIs() {
        List<String> journal = new ArrayList<>();
        AddressSpace space = new AddressSpace();
        space.addListener(new Listener("a", journal, Set.of(), Set.of()));
        AssertionError boom = new AssertionError("boom");
        space.addListener(new MemoryListener() {
            @Override
            public void regionAdded(MemoryRegion region) {
                throw boom;
            }

            @Override
            public void regionRemoved(MemoryRegion region) {
                journal.add("thrower-" + region.name());
            }
        });
        assertSame(boom, assertThrows(AssertionError.class, () -> space.add(region("x", 0))));
        assertEquals(List.of("a+x", "a-x"), journal, "the listener that threw is not told to remove");
    }
}
