package dev.panamax.launcher;

import dev.panamax.vmm.DeviceConfig;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --device} as QEMU users write it, and one clear line for what is wrong with it. */
class DeviceSpecTest {
    @Test
    void vfioPciTakesTheHostAddressAndAddsDomainZero() {
        assertEquals(new DeviceConfig.VfioPci("vfio-pci,host=0000:00:04.0", "0000:00:04.0"),
                DeviceSpec.parse("vfio-pci,host=0000:00:04.0"));
        assertEquals("0000:01:00.0", ((DeviceConfig.VfioPci) DeviceSpec.parse("vfio-pci,host=01:00.0")).host());
    }

    @Test
    void vfioUserPciTakesASocketInBothForms() {
        assertEquals(Path.of("/run/blk.sock"), ((DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/run/blk.sock")).socket());
        assertEquals(Path.of("/run/blk.sock"), ((DeviceConfig.VfioUserPci) DeviceSpec.parse(
                "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"/run/blk.sock\",\"type\":\"unix\"}}")).socket());
    }

    @Test
    void vfioUserPciTimeoutAndOnError() {
        var d = (DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/s");
        assertEquals(java.time.Duration.ofSeconds(5), d.requestTimeout());
        assertEquals(false, d.stopOnError());
        d = (DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/s,timeout=500ms,on-error=stop");
        assertEquals(java.time.Duration.ofMillis(500), d.requestTimeout());
        assertEquals(true, d.stopOnError());
        assertError("vfio-user-pci,socket=/s,on-error=panic", "on-error must be continue or stop");
        assertError("vfio-user-pci,socket=/s,timeout=soon", "timeout 'soon' is not a duration");
    }

    @Test
    void vfioUserPciIoeventfdIsOffByDefaultAndSwitchable() {
        assertEquals(false, ((DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/s")).ioeventfd());
        assertEquals(false, ((DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/s,ioeventfd=off")).ioeventfd());
        assertEquals(true, ((DeviceConfig.VfioUserPci) DeviceSpec.parse("vfio-user-pci,socket=/s,ioeventfd=on")).ioeventfd());
        assertError("vfio-user-pci,socket=/s,ioeventfd=maybe", "ioeventfd must be on or off");
    }

    @Test
    void mistakesNameTheOptionAndWhatIsWrong() {
        assertError("vfio-pci", "vfio-pci needs host=");
        assertError("vfio-pci,host=", "vfio-pci needs host=");
        assertError("virtio-net,host=1", "unknown driver 'virtio-net'");
        assertError("vfio-pci,host=0000:00:04.0,x-foo=1", "unknown property x-foo for vfio-pci");
        assertError("vfio-pci,host=0000:00:04.0,host=0000:00:05.0", "host given twice");
        assertError("vfio-pci,oops", "'oops' is not key=value");
        assertError("vfio-user-pci", "vfio-user-pci needs socket=PATH");
        assertError("{\"driver\":\"vfio-user-pci\",", "not valid JSON");
        assertError("{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"h:1\",\"type\":\"inet\"}}", "socket type 'inet' is not supported");
        assertError("{\"socket\":{\"path\":\"/s\"}}", "no driver");
    }

    private static void assertError(String option, String expected) {
        PanamaxException e = assertThrows(PanamaxException.class, () -> DeviceSpec.parse(option));
        assertTrue(e.getMessage().startsWith("--device " + option + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
