package dev.panamax.vfio;

import dev.panamax.core.irq.IrqRoutes;
import dev.panamax.core.sys.EventFd;
import dev.panamax.pci.MsiCapability;
import dev.panamax.pci.MsiListener;
import dev.panamax.pci.MsixCapability;
import dev.panamax.vfio.VfioIrqSet.Action;
import dev.panamax.vfio.bindings.vfio_h;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An assigned device's interrupts, wired so that none passes through this process: the device signals an
 * eventfd ({@code VFIO_DEVICE_SET_IRQS}, action TRIGGER) and KVM injects from that eventfd (an irqfd).
 *
 * <ul>
 *   <li><b>MSI-X and MSI</b>: when the guest sets the enable bit of the emulated capability, every vector gets an
 *       eventfd given to VFIO. A vector the guest unmasks gets a GSI route to its message address and data
 *       ({@link IrqRoutes#addMsiRoute}) and an irqfd from its eventfd to that GSI; a masked vector loses its
 *       irqfd, so what the device signals meanwhile stays counted in the eventfd and is injected when the
 *       irqfd comes back (the pending bit, kept by the kernel).</li>
 *   <li><b>INTx</b>: the trigger eventfd drives an irqfd with a resample eventfd on the pin's GSI; the
 *       resample eventfd is also VFIO's INTx unmask eventfd. VFIO masks the line each time it fires, and the
 *       guest's EOI signals the resample eventfd, which unmasks it in the kernel: the EOI path, with no exit to
 *       this process (replacing the 2012 RFC's EOI ioctl).</li>
 * </ul>
 * INTx is on while neither MSI nor MSI-X is enabled, as a PCI function behaves (and as vfio-pci requires: one
 * IRQ index at a time). The mode follows the capabilities' control registers ({@link #modeChanged()}, called
 * after every guest write to them) and the vectors follow {@link MsiListener#onVectorChanged}.
 *
 * <p>A refusal (the device's error reply to SET_IRQS or a failing {@code VFIO_DEVICE_SET_IRQS}; KVM's routing
 * table full or {@code KVM_SET_GSI_ROUTING}/{@code KVM_IRQFD} failing) never reaches the guest's access: what
 * was made for the change is undone (eventfds closed, routes and irqfds removed), the mode stays as it was
 * (INTx put back, or off) and one warning names the device, the mode and the cause. The guest sees no
 * interrupts, as with a broken device.
 *
 * <p>All methods run with the function's lock held (config writes, MSI-X table writes), so one thread at a time.
 */
public final class VfioInterrupts implements MsiListener, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(VfioInterrupts.class);

    /** Which of the device's IRQ indexes is on. */
    public enum Mode { NONE, INTX, MSI, MSIX }

    private final VfioDeviceIo device;
    private final IrqRoutes routes;
    private MsiCapability msi;
    private MsixCapability msix;
    /** The function's lock ({@link #attach}), taken before this object's. */
    private Object lock = this;
    private int intxGsi = -1;
    private Mode mode = Mode.NONE;
    private EventFd intxTrigger;
    private EventFd intxUnmask;
    private Vector[] vectors = new Vector[0];
    /** The mode whose enable failed and was reported, until the guest asks for another; null if none. */
    private Mode refused;

    /** One MSI or MSI-X vector: its eventfd, its GSI route (or -1) and whether the irqfd is bound. */
    private static final class Vector {
        final EventFd eventFd = new EventFd(true);
        int gsi = -1;
        boolean bound;
    }

    /**
     * @param device the assigned device
     * @param routes the VM's GSI routes and irqfds
     */
    public VfioInterrupts(VfioDeviceIo device, IrqRoutes routes) {
        this.device = device;
        this.routes = routes;
    }

    /**
     * Follows {@code function}'s MSI and MSI-X capabilities (their control registers) from now on.
     * Call once, after the function is built with this object as its {@link MsiListener}.
     */
    public void attach(VfioPciFunction function) {
        this.lock = function.lock();
        synchronized (function.lock()) {
            this.msi = function.msi();
            this.msix = function.msix();
            if (msi != null) {
                function.addConfigWriteHook(msi.offset() + MsiCapability.FLAGS, 2, this::modeChanged);
            }
            if (msix != null) {
                function.addConfigWriteHook(msix.offset() + MsixCapability.FLAGS, 2, this::modeChanged);
            }
        }
    }

    /**
     * Turns INTx on through GSI {@code gsi} (the I/O APIC input the function's pin is wired to), unless the
     * device has no INTx or MSI/MSI-X is on.
     */
    public void connectIntx(int gsi) {
        VfioIrqInfo info = device.irqInfo(vfio_h.VFIO_PCI_INTX_IRQ_INDEX());
        if (info.count() < 1 || !info.eventfd()) {
            log.debug("{}: no INTx", device.name());
            return;
        }
        // The function's lock first, as on the guest's config writes, then this object's.
        synchronized (lock) {
            synchronized (this) {
                intxGsi = gsi;
                modeChanged();
            }
        }
    }

    /** @return the IRQ index that is on now */
    public synchronized Mode mode() {
        return mode;
    }

    /**
     * Switches VFIO to the index the guest's capability registers ask for, if it changed. Never throws: when the
     * new index cannot be enabled (the device refuses SET_IRQS, KVM refuses the irqfd), what was made for it is
     * undone, INTx is put back if it was on (otherwise interrupts stay off), and one line says so. The guest's
     * driver then sees no interrupts and times out, as with a broken device on real hardware. A refused mode is
     * not tried again until the guest asks for another one.
     */
    public synchronized void modeChanged() {
        Mode want = msix != null && msix.enabled() ? Mode.MSIX
                : msi != null && msi.enabled() ? Mode.MSI
                : intxGsi >= 0 ? Mode.INTX : Mode.NONE;
        if (want == mode) {
            refused = null;
            return;
        }
        if (want == refused) {
            return; // reported already
        }
        log.debug("{}: interrupts {} -> {}", device.name(), mode, want);
        Mode old = mode;
        off();
        try {
            switch (want) {
                case INTX -> intxOn();
                case MSI -> vectorsOn(vfio_h.VFIO_PCI_MSI_IRQ_INDEX(), msi.enabledVectors());
                case MSIX -> vectorsOn(vfio_h.VFIO_PCI_MSIX_IRQ_INDEX(), msix.vectors());
                case NONE -> { }
            }
            mode = want;
            refused = null;
        } catch (RuntimeException e) {
            refused = want;
            String stay = "off";
            if (old == Mode.INTX) {
                try {
                    intxOn();
                    mode = Mode.INTX;
                    stay = "INTx";
                } catch (RuntimeException again) {
                    stay = "off (INTx not restored: " + again.getMessage() + ")";
                }
            }
            log.warn("{}: enabling {} failed, interrupts stay {}: {}", device.name(), label(want), stay, e.getMessage());
        }
    }

    private static String label(Mode mode) {
        return switch (mode) {
            case NONE -> "no interrupts";
            case INTX -> "INTx";
            case MSI -> "MSI";
            case MSIX -> "MSI-X";
        };
    }

    /** Enables INTx, or undoes every step taken and rethrows. */
    private void intxOn() {
        int index = vfio_h.VFIO_PCI_INTX_IRQ_INDEX();
        EventFd trigger = null;
        EventFd unmask = null;
        boolean sent = false;
        boolean bound = false;
        try {
            trigger = new EventFd(true);
            unmask = new EventFd(true);
            sent = true;
            device.setIrqs(VfioIrqSet.eventfds(Action.TRIGGER, index, 0, trigger.fd()));
            routes.bindResampleIrqfd(trigger.fd(), unmask.fd(), intxGsi);
            bound = true;
            device.setIrqs(VfioIrqSet.eventfds(Action.UNMASK, index, 0, unmask.fd()));
        } catch (RuntimeException e) {
            int fd = trigger == null ? -1 : trigger.fd();
            if (bound) {
                undo(() -> routes.unbindIrqfd(fd, intxGsi), "KVM_IRQFD deassign");
            }
            if (sent) {
                undo(() -> device.setIrqs(VfioIrqSet.disable(index)), "SET_IRQS disable INTx");
            }
            closeAll(trigger, unmask);
            throw e;
        }
        intxTrigger = trigger;
        intxUnmask = unmask;
        log.debug("{}: INTx -> irqfd on GSI {} with resample (EOI unmasks)", device.name(), intxGsi);
    }

    /** Gives VFIO an eventfd for each of {@code count} vectors, or closes them, disables the index and rethrows. */
    private void vectorsOn(int index, int count) {
        Vector[] made = new Vector[count];
        boolean sent = false;
        try {
            int[] fds = new int[count];
            for (int i = 0; i < count; i++) {
                made[i] = new Vector();
                fds[i] = made[i].eventFd.fd();
            }
            sent = true;
            device.setIrqs(VfioIrqSet.eventfds(Action.TRIGGER, index, 0, fds));
        } catch (RuntimeException e) {
            if (sent) {
                // vfio-user: the messages before a refused one took effect (VfioUserDeviceIo.setIrqs).
                undo(() -> device.setIrqs(VfioIrqSet.disable(index)), "SET_IRQS disable");
            }
            for (Vector v : made) {
                if (v != null) {
                    v.eventFd.close();
                }
            }
            throw e;
        }
        vectors = made;
        log.debug("{}: {} vectors -> eventfds", device.name(), count);
    }

    /**
     * Turns off whatever index is on: irqfds unbound, routes removed, VFIO told, eventfds closed. Each step is
     * tried even when one before it fails; a failure is one line, and the eventfds are closed all the same.
     */
    private void off() {
        String failure = null;
        switch (mode) {
            case INTX -> {
                int fd = intxTrigger.fd();
                failure = attempt(failure, () -> routes.unbindIrqfd(fd, intxGsi));
                failure = attempt(failure, () -> device.setIrqs(VfioIrqSet.disable(vfio_h.VFIO_PCI_INTX_IRQ_INDEX())));
                closeAll(intxTrigger, intxUnmask);
                intxTrigger = null;
                intxUnmask = null;
            }
            case MSI, MSIX -> {
                for (Vector v : vectors) {
                    if (v.bound) {
                        failure = attempt(failure, () -> routes.unbindIrqfd(v.eventFd.fd(), v.gsi));
                    }
                    if (v.gsi >= 0) {
                        failure = attempt(failure, () -> routes.removeMsiRoute(v.gsi));
                    }
                }
                int index = mode == Mode.MSI ? vfio_h.VFIO_PCI_MSI_IRQ_INDEX() : vfio_h.VFIO_PCI_MSIX_IRQ_INDEX();
                failure = attempt(failure, () -> device.setIrqs(VfioIrqSet.disable(index)));
                for (Vector v : vectors) {
                    v.eventFd.close();
                }
                vectors = new Vector[0];
            }
            case NONE -> { }
        }
        if (failure != null) {
            log.warn("{}: turning {} off: {} (its eventfds are closed all the same)", device.name(), label(mode), failure);
        }
        mode = Mode.NONE;
    }

    /** @return {@code first}, or the message of {@code step}'s failure if it fails and {@code first} is null */
    private static String attempt(String first, Runnable step) {
        try {
            step.run();
            return first;
        } catch (RuntimeException e) {
            return first != null ? first : e.getMessage();
        }
    }

    /** A rollback step: its failure is only logged (at debug: the cause that made it needed is what is reported). */
    private void undo(Runnable step, String what) {
        String failure = attempt(null, step);
        if (failure != null) {
            log.debug("{}: {} while rolling back: {}", device.name(), what, failure);
        }
    }

    private static void closeAll(EventFd... fds) {
        for (EventFd fd : fds) {
            if (fd != null) {
                fd.close();
            }
        }
    }

    /**
     * The guest programmed, masked or unmasked a vector: move its route and bind or unbind its irqfd. When KVM
     * refuses (routing table full, KVM_SET_GSI_ROUTING or KVM_IRQFD failing), the vector is left with neither
     * route nor irqfd, and one line says so; the guest can try again by masking and unmasking it.
     */
    @Override
    public synchronized void onVectorChanged(int vector, long address, int data, boolean masked) {
        modeChanged();
        if ((mode != Mode.MSI && mode != Mode.MSIX) || vector >= vectors.length) {
            return;
        }
        Vector v = vectors[vector];
        if (masked) {
            if (v.bound) {
                String failure = attempt(null, () -> routes.unbindIrqfd(v.eventFd.fd(), v.gsi));
                if (failure != null) {
                    log.warn("{}: {} vector {} mask: {}", device.name(), label(mode), vector, failure);
                } else {
                    v.bound = false;
                }
            }
            return;
        }
        try {
            if (v.gsi < 0) {
                v.gsi = routes.addMsiRoute(address, data);
            } else {
                routes.updateMsiRoute(v.gsi, address, data);
            }
            if (!v.bound) {
                routes.bindIrqfd(v.eventFd.fd(), v.gsi);
                v.bound = true;
            }
        } catch (RuntimeException e) {
            if (v.bound) {
                undo(() -> routes.unbindIrqfd(v.eventFd.fd(), v.gsi), "KVM_IRQFD deassign");
                v.bound = false;
            }
            if (v.gsi >= 0) {
                undo(() -> routes.removeMsiRoute(v.gsi), "GSI route removal");
                v.gsi = -1;
            }
            log.warn("{}: {} vector {} gets no interrupts: {}", device.name(), label(mode), vector, e.getMessage());
            return;
        }
        log.debug("{}: vector {} -> GSI {} (address 0x{} data 0x{})", device.name(), vector, v.gsi,
                Long.toHexString(address), Integer.toHexString(data));
    }

    /**
     * A message the emulation itself wants sent (a pending vector unmasked). The device's own messages never
     * come here: they go from its eventfd to KVM, and the kernel keeps their pending state.
     */
    @Override
    public void onMessage(int vector, long address, int data) {
        log.trace("{}: emulated message for vector {} ignored: the device signals through its eventfd", device.name(), vector);
    }

    /** Turns every interrupt off and closes the eventfds. */
    @Override
    public synchronized void close() {
        off();
        intxGsi = -1;
    }
}
