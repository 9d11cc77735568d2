package dev.panamax.vmm;

import dev.panamax.firmware.MpTable;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A machine's config, built from Java: its errors name the setting. */
class MachineConfigTest {
    @Test
    void badMachineConfigsSayWhatIsWrong() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> new MachineConfig(null, null, "", 0, 512L << 20, null, false));
        assertEquals("cpus must be between 1 and 254, not 0", e.getMessage());
        assertEquals("cpus", e.setting());
        assertEquals("--cpus must be between 1 and 254, not 0", e.messageNaming("--cpus"));
        e = assertThrows(ConfigException.class, () -> new MachineConfig(null, null, "", 1, 3L << 20, null, false));
        assertEquals("memory must be at least 32M for a Linux guest, not 3145728 bytes", e.getMessage());
        e = assertThrows(ConfigException.class, () -> new MachineConfig(null, null, "", 1, (64L << 20) + 4096, null, false));
        assertEquals("memory must be a multiple of 2M, not 67112960 bytes", e.getMessage());
        assertEquals("memory", e.setting());
    }

    @Test
    void cpusStopAtWhatTheMpTableAndTheMadtCanDescribe() {
        // The I/O APIC's id is cpus: one byte in the MP table and in the MADT, and 0xFF is the broadcast id.
        ConfigException e = assertThrows(ConfigException.class, () -> new MachineConfig(null, null, "", 255, 512L << 20, null, false));
        assertEquals("cpus", e.setting());
        assertEquals("--cpus must be between 1 and 254, not 255", e.messageNaming("--cpus"));
        MachineConfig most = new MachineConfig(null, null, "", 254, 512L << 20, null, false);
        MpTable table = MpTable.standard(most.cpus());
        assertEquals(254, table.ioApicId());
        byte[] madt = dev.panamax.firmware.acpi.AcpiTables.build(dev.panamax.firmware.acpi.AcpiMachine.pc(most.cpus(),
                new dev.panamax.firmware.acpi.AcpiMachine.PmRegisters(9, 0x600, 0x604, 0x608, 1), 0xE000_0000L,
                new dev.panamax.firmware.acpi.AcpiMachine.Window(0xC000_0000L, 0x2000_0000L),
                new dev.panamax.firmware.acpi.AcpiMachine.Window(0x40_0000_0000L, 0x40_0000_0000L), List.of()))
                .table("APIC").bytes();
        // 44 bytes of header, 254 Processor Local APIC structures of 8 bytes, then the I/O APIC structure: id 254.
        assertEquals(1, madt[44 + 254 * 8]);
        assertEquals(254, madt[44 + 254 * 8 + 2] & 0xFF);
    }

    /** auto: a memfd when a vfio-user server must map guest RAM, anonymous memory (THP) otherwise. */
    @Test
    void theMemoryBackendFollowsTheDevices() {
        DeviceConfig user = new DeviceConfig.VfioUserPci("vfio-user-pci,socket=/run/blk.sock",
                java.nio.file.Path.of("/run/blk.sock"), DeviceConfig.VfioUserPci.DEFAULT_TIMEOUT, true);
        DeviceConfig pci = new DeviceConfig.VfioPci("vfio-pci,host=0000:00:04.0", "0000:00:04.0");
        assertEquals(dev.panamax.core.memory.RamBacking.ANONYMOUS, config(List.of(), null).ramBacking());
        assertEquals(MemoryBackend.AUTO, config(List.of(), null).memoryBackend());
        assertEquals(dev.panamax.core.memory.RamBacking.ANONYMOUS, config(List.of(pci), MemoryBackend.AUTO).ramBacking());
        assertEquals(dev.panamax.core.memory.RamBacking.MEMFD, config(List.of(pci, user), MemoryBackend.AUTO).ramBacking());
        assertEquals(dev.panamax.core.memory.RamBacking.HUGETLBFS, config(List.of(user), MemoryBackend.HUGETLBFS).ramBacking());
        assertEquals(dev.panamax.core.memory.RamBacking.MEMFD, config(List.of(), MemoryBackend.MEMFD).ramBacking());
        assertEquals(dev.panamax.core.memory.RamBacking.ANONYMOUS, config(List.of(pci), MemoryBackend.ANONYMOUS).ramBacking());
        assertEquals(MemoryBackend.AUTO, new MachineConfig(null, null, "", 1, 64L << 20, null, false).memoryBackend());
    }

    @Test
    void anonymousMemoryWithAVfioUserDeviceIsRefusedNamingBoth() {
        DeviceConfig user = new DeviceConfig.VfioUserPci("vfio-user-pci,socket=/run/blk.sock",
                java.nio.file.Path.of("/run/blk.sock"), DeviceConfig.VfioUserPci.DEFAULT_TIMEOUT, true);
        ConfigException e = assertThrows(ConfigException.class, () -> config(List.of(user), MemoryBackend.ANONYMOUS));
        assertEquals("memoryBackend", e.setting());
        assertEquals("--memory-backend anonymous cannot be used with vfio-user device vfio-user-pci,socket=/run/blk.sock:"
                + " its server maps guest RAM through a file descriptor, which anonymous memory has not;"
                + " use memfd or hugetlbfs (auto picks memfd)", e.messageNaming("--memory-backend"));
    }

    /** Without free huge pages (vm.nr_hugepages 0, as on most hosts), hugetlbfs fails at start with one line. */
    @Test
    void hugetlbfsWithoutFreeHugePagesIsOneLineAtStart() throws Exception {
        long free = 0;
        for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo"))) {
            if (line.startsWith("HugePages_Free:")) {
                free = Long.parseLong(line.split("\\s+")[1]);
            }
        }
        org.junit.jupiter.api.Assumptions.assumeTrue(free < 32, "this host has " + free + " free huge pages");
        MachineConfig c = config(List.of(), MemoryBackend.HUGETLBFS);
        ConfigException e = assertThrows(ConfigException.class,
                () -> Machine.allocate(new dev.panamax.core.memory.AddressSpace(), c));
        assertEquals("memoryBackend", e.setting());
        String line = e.messageNaming("--memory-backend");
        org.junit.jupiter.api.Assertions.assertTrue(line.startsWith("--memory-backend hugetlbfs: cannot get 64 MiB of 2 MiB"
                + " huge pages (mmap panamax-guest-ram: 32 huge pages of 2 MiB needed, the host has "), line);
        org.junit.jupiter.api.Assertions.assertFalse(line.contains("\n"), line);
    }

    private static MachineConfig config(List<DeviceConfig> devices, MemoryBackend backend) {
        return new MachineConfig(null, null, "", 1, 64L << 20, null, false, devices, false, backend);
    }

    @Test
    void aKernelThatIsNotThereIsAKernelError() {
        MachineConfig config = new MachineConfig(java.nio.file.Path.of("/nonexistent/vmlinuz"), null, "", 1, 32L << 20,
                null, false);
        ConfigException e = assertThrows(ConfigException.class, () -> Machine.boot(config));
        assertEquals("kernel", e.setting());
        assertEquals("kernel /nonexistent/vmlinuz: no such file", e.getMessage());
    }
}
