package dev.panamax.launcher;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import dev.panamax.vmm.DeviceConfig;
import picocli.CommandLine;

import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One {@code --device} option, as QEMU users write it: {@code DRIVER,key=value,...} or QEMU's JSON form
 * {@code {"driver":"vfio-user-pci","socket":{"path":PATH,"type":"unix"}}}, parsed into the machine's
 * {@link DeviceConfig} (named in messages by the option as written):
 * <ul>
 * <li>{@code vfio-pci,host=0000:00:04.0}: a host PCI device handed over by the kernel's VFIO (BB:DD.F means
 *     domain 0);</li>
 * <li>{@code vfio-user-pci,socket=PATH}, with optional {@code timeout=DURATION} (how long a request may wait for
 *     its reply, default 5 s) and {@code on-error=continue|stop} (when the server dies or misbehaves: go on with the
 *     device broken, its reads all-ones and its writes dropped, which is the default; or stop the VM with an
 *     error), and {@code ioeventfd=on|off} (register the doorbells the server offers with KVM, so that they skip
 *     the socket; off by default until measured, and on turns posted BAR writes off).</li>
 * </ul>
 */
final class DeviceSpec {
    private DeviceSpec() {
    }

    /**
     * Parses one {@code --device} value.
     *
     * @throws PanamaxException naming the option and what is wrong with it
     */
    static DeviceConfig parse(String text) {
        Map<String, String> props = text.strip().startsWith("{") ? json(text) : keyValues(text);
        String driver = props.remove("driver");
        DeviceConfig spec = switch (driver) {
            case "vfio-pci" -> {
                String host = props.remove("host");
                if (host == null || host.isBlank()) {
                    throw new PanamaxException("--device " + text + ": vfio-pci needs host=DDDD:BB:DD.F, e.g. vfio-pci,host=0000:01:00.0");
                }
                yield new DeviceConfig.VfioPci(text, host.contains(":") && host.indexOf(':') == host.lastIndexOf(':') ? "0000:" + host : host);
            }
            case "vfio-user-pci" -> {
                String socket = props.remove("socket");
                if (socket == null || socket.isBlank()) {
                    throw new PanamaxException("--device " + text + ": vfio-user-pci needs socket=PATH, e.g. vfio-user-pci,socket=/run/blk.sock");
                }
                String timeout = props.remove("timeout");
                String onError = props.getOrDefault("on-error", "continue");
                props.remove("on-error");
                if (!onError.equals("continue") && !onError.equals("stop")) {
                    throw new PanamaxException("--device " + text + ": on-error must be continue or stop, not '" + onError + "'");
                }
                Duration t;
                try {
                    t = timeout == null ? DeviceConfig.VfioUserPci.DEFAULT_TIMEOUT : new DurationConverter().convert(timeout);
                } catch (CommandLine.TypeConversionException e) {
                    throw new PanamaxException("--device " + text + ": timeout " + e.getMessage());
                }
                String ioeventfd = props.getOrDefault("ioeventfd", "off");
                props.remove("ioeventfd");
                if (!ioeventfd.equals("on") && !ioeventfd.equals("off")) {
                    throw new PanamaxException("--device " + text + ": ioeventfd must be on or off, not '" + ioeventfd + "'");
                }
                yield new DeviceConfig.VfioUserPci(text, Path.of(socket), t, onError.equals("stop"), ioeventfd.equals("on"));
            }
            case null -> throw new PanamaxException("--device " + text + ": no driver; write e.g. vfio-pci,host=0000:01:00.0");
            default -> throw new PanamaxException("--device " + text + ": unknown driver '" + driver
                    + "' (Panamax knows vfio-pci and vfio-user-pci)");
        };
        if (!props.isEmpty()) {
            throw new PanamaxException("--device " + text + ": unknown propert" + (props.size() == 1 ? "y " : "ies ")
                    + String.join(", ", props.keySet()) + " for " + driver);
        }
        return spec;
    }

    /** {@code driver,key=value,...}; a bare first word is the driver. */
    private static Map<String, String> keyValues(String text) {
        Map<String, String> props = new LinkedHashMap<>();
        String[] parts = text.split(",", -1);
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].strip();
            int eq = p.indexOf('=');
            if (i == 0 && eq < 0) {
                props.put("driver", p);
            } else if (eq <= 0) {
                throw new PanamaxException("--device " + text + ": '" + p + "' is not key=value");
            } else if (props.put(p.substring(0, eq), p.substring(eq + 1)) != null) {
                throw new PanamaxException("--device " + text + ": " + p.substring(0, eq) + " given twice");
            }
        }
        return props;
    }

    /** QEMU's JSON form; {@code socket} is an object with {@code path} and {@code type} "unix". */
    private static Map<String, String> json(String text) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(text);
        } catch (JsonProcessingException e) {
            throw new PanamaxException("--device " + text + ": not valid JSON (" + e.getOriginalMessage() + ")");
        }
        if (root == null || !root.isObject()) {
            throw new PanamaxException("--device " + text + ": JSON must be an object");
        }
        Map<String, String> props = new LinkedHashMap<>();
        for (var field : root.properties()) {
            JsonNode v = field.getValue();
            if (field.getKey().equals("socket") && v.isObject()) {
                String type = v.path("type").asText("unix");
                if (!type.equals("unix")) {
                    throw new PanamaxException("--device " + text + ": socket type '" + type + "' is not supported (only unix)");
                }
                props.put("socket", v.path("path").asText(""));
            } else if (v.isValueNode()) {
                props.put(field.getKey(), v.asText());
            } else {
                throw new PanamaxException("--device " + text + ": property " + field.getKey() + " must be a string");
            }
        }
        return props;
    }
}
