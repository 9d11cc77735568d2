package dev.panamax.vmm;

import dev.panamax.core.memory.X86Layout;
import dev.panamax.devices.AcpiPm;
import dev.panamax.firmware.MpTable;
import dev.panamax.firmware.acpi.AcpiMachine;
import dev.panamax.kvm.Kvm;
import dev.panamax.pci.PciBarAllocator;
import dev.panamax.pci.PciBus;

import java.util.ArrayList;
import java.util.List;

/**
 * What the firmware's tables say of the machine {@link Machine} builds (the MP table, the ACPI tables' description,
 * the PCI windows BARs go in), from the machine's parts: apart from {@code Machine} so that it reads as its assembly.
 */
final class PcFirmware {
    private PcFirmware() {
    }

    /**
     * The MP table for {@code cpus} CPUs and the PCI bus: the firmware's standard table with the bus's INTx# wiring
     * ({@link PciBus#intxRoutes}) added as MP bus 0.
     */
    static MpTable mpTable(int cpus, PciBus pci) {
        List<MpTable.InterruptSource> sources = new ArrayList<>();
        for (PciBus.IntxRoute r : pci.intxRoutes()) {
            sources.add(new MpTable.InterruptSource(0, r.device(), r.pin(), r.gsi()));
        }
        return MpTable.standard(cpus).withPciBus(sources);
    }

    /**
     * What the ACPI tables describe ({@code firmware}'s neutral description, as {@link #mpTable} for the MP table):
     * the CPUs, the {@link AcpiPm} registers, the ECAM window of {@link X86Layout}, the PCI windows the BAR allocator
     * places BARs in, and the INTx# wiring of every slot and pin ({@link PciBus#gsi}) for the DSDT's {@code _PRT}.
     */
    static AcpiMachine acpiMachine(int cpus, PciBarAllocator bars) {
        PciBarAllocator.Windows w = bars.windows();
        List<MpTable.InterruptSource> prt = new ArrayList<>();
        for (int slot = 1; slot < PciBus.DEVICES; slot++) {
            for (int pin = 1; pin <= 4; pin++) {
                prt.add(new MpTable.InterruptSource(0, slot, pin, PciBus.gsi(slot, pin)));
            }
        }
        AcpiMachine.PmRegisters pm = new AcpiMachine.PmRegisters(AcpiPm.SCI_IRQ,
                AcpiPm.BASE_PORT + AcpiPm.PM1_EVT_OFFSET, AcpiPm.BASE_PORT + AcpiPm.PM1_CNT_OFFSET,
                AcpiPm.BASE_PORT + AcpiPm.RESET_OFFSET, AcpiPm.RESET_VALUE);
        return AcpiMachine.pc(cpus, pm, X86Layout.ECAM_BASE,
                new AcpiMachine.Window(w.mmio32Start(), w.mmio32End() - w.mmio32Start()),
                new AcpiMachine.Window(w.mmio64Start(), w.mmio64End() - w.mmio64Start()), prt);
    }

    /**
     * The BAR allocator over the machine's PCI windows ({@link PciBarAllocator#windows()}, which the firmware's
     * host bridge description must repeat): the 32-bit window of {@link X86Layout}, and the 64-bit window from the
     * first 1 GiB boundary above RAM to 1 TiB or the end of the guest's physical addresses, whichever is lower.
     */
    static PciBarAllocator barAllocator(long ramBytes, int physicalAddressBits) {
        long start = X86Layout.pciMmio64Start(ramBytes);
        long end = Math.max(start, X86Layout.pciMmio64End(physicalAddressBits)); // RAM up to the end: an empty window
        return new PciBarAllocator(start, end);
    }

    /**
     * @return the guest's physical address width: CPUID 0x80000008 EAX[7:0] as KVM presents it
     *         ({@code KVM_GET_SUPPORTED_CPUID}: the host's), or {@link X86Layout#DEFAULT_PHYSICAL_ADDRESS_BITS}
     */
    static int physicalAddressBits(Kvm kvm) {
        for (var e : kvm.supportedCpuid()) {
            if (e.function() == 0x8000_0008 && e.index() == 0 && (e.eax() & 0xFF) >= 32) {
                return Math.min(e.eax() & 0xFF, 52);
            }
        }
        return X86Layout.DEFAULT_PHYSICAL_ADDRESS_BITS;
    }
}
