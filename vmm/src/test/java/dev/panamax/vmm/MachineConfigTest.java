package dev.panamax.vmm;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** A machine's config, built from Java: its errors name the setting. */
class MachineConfigTest {
    @Test
    void badMachineConfigsSayWhatIsWrong() {
        ConfigException e = assertThrows(ConfigException.class,
                () -> new MachineConfig(null, null, "", 0, 512L << 20, null, false));
        assertEquals("cpus must be between 1 and 255, not 0", e.getMessage());
        assertEquals("cpus", e.setting());
        assertEquals("--cpus must be between 1 and 255, not 0", e.messageNaming("--cpus"));
        e = assertThrows(ConfigException.class, () -> new MachineConfig(null, null, "", 1, 3L << 20, null, false));
        assertEquals("memory must be at least 32M for a Linux guest, not 3145728 bytes", e.getMessage());
        e = assertThrows(ConfigException.class, () -> new MachineConfig(null, null, "", 1, (64L << 20) + 4096, null, false));
        assertEquals("memory must be a multiple of 2M, not 67112960 bytes", e.getMessage());
        assertEquals("memory", e.setting());
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
