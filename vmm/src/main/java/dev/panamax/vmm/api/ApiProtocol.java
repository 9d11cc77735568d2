package dev.panamax.vmm.api;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The control socket's requests and replies, as {@link ApiServer}'s docstring gives them: one request line (JSON
 * bytes) in, one reply object out, never an exception. Requests reach the {@link VmControl} one at a time, whichever
 * connection they come from.
 */
final class ApiProtocol {
    private static final Logger LOG = LoggerFactory.getLogger(ApiProtocol.class);

    /** Strict JSON: one value per line, nothing after it, no duplicate keys. */
    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    /** The commands, in the order error messages list them. */
    static final String COMMANDS = "status, pause, resume, snapshot, migrate";

    /** Longest text of the peer's echoed in an error message (a command name, a field name). */
    private static final int ECHO_CHARS = 64;

    private final VmControl vm;
    private final ReentrantLock serial = new ReentrantLock();

    ApiProtocol(VmControl vm) {
        this.vm = vm;
    }

    /** A request that is not one this protocol accepts; its message is the reply's {@code error}. */
    private static final class BadRequest extends Exception {
        BadRequest(String message) {
            super(message, null, false, false);
        }
    }

    /** @return the reply to the request {@code line} (without its {@code '\n'}): {@code {"ok":true,...}} or {@code {"ok":false,"error":...}} */
    ObjectNode handle(byte[] line) {
        ObjectNode request;
        String command;
        try {
            request = parse(line);
            command = command(request);
        } catch (BadRequest e) {
            LOG.debug("control socket: bad request: {}", e.getMessage());
            return error(e.getMessage());
        }
        serial.lock();
        try {
            return execute(command, request);
        } catch (BadRequest e) {
            LOG.debug("control socket: bad request: {}", e.getMessage());
            return error(e.getMessage());
        } catch (VmControl.ControlException e) {
            // The machine's refusals name their request already ("snapshot refused: ...", "migrate failed: ...").
            String reason = oneLine(e);
            String reply = reason.startsWith(command + " ") ? reason : command + ": " + reason;
            LOG.info("control socket: {}", reply);
            return error(reply);
        } catch (RuntimeException e) {
            LOG.warn("control socket: {} failed", command, e);
            return error(command + ": " + oneLine(e));
        } catch (Error e) {
            // An OutOfMemoryError or an InternalError (a fault in guest memory) in the request's work: said here and
            // answered, not left to end the connection without a reply and be logged only after it closed.
            LOG.error("control socket: {} failed", command, e);
            return error(command + ": " + e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + oneLine(e)));
        } finally {
            serial.unlock();
        }
    }

    private static ObjectNode parse(byte[] line) throws BadRequest {
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (JacksonException e) {
            throw new BadRequest("bad JSON: " + clip(e.getOriginalMessage(), 200));
        } catch (java.io.IOException e) {
            throw new BadRequest("bad JSON: " + clip(e.getMessage(), 200));
        }
        if (node == null || node.isMissingNode()) {
            throw new BadRequest("empty request: send one JSON object per line, e.g. {\"command\":\"status\"}");
        }
        if (!(node instanceof ObjectNode object)) {
            throw new BadRequest("a request is a JSON object, not " + node.getNodeType().name().toLowerCase(java.util.Locale.ROOT));
        }
        return object;
    }

    private static String command(ObjectNode request) throws BadRequest {
        JsonNode c = request.get("command");
        if (c == null || !c.isTextual()) {
            throw new BadRequest("a request needs \"command\", a string: one of " + COMMANDS);
        }
        String command = c.textValue();
        Set<String> fields = switch (command) {
            case "status", "pause", "resume" -> Set.of("command");
            case "snapshot" -> Set.of("command", "dir");
            case "migrate" -> Set.of("command", "socket");
            default -> throw new BadRequest("unknown command '" + clip(command, ECHO_CHARS) + "' (" + COMMANDS + ")");
        };
        for (Iterator<String> names = request.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!fields.contains(name)) {
                throw new BadRequest(command + ": unknown field '" + clip(name, ECHO_CHARS) + "'");
            }
        }
        return command;
    }

    private ObjectNode execute(String command, ObjectNode request) throws BadRequest {
        ObjectNode reply = ok();
        switch (command) {
            case "status" -> {
                VmControl.Status s = vm.status();
                reply.put("state", s.state()).put("cpus", s.cpus()).put("memory_bytes", s.memoryBytes())
                        .put("uptime_ms", s.uptimeMillis());
            }
            case "pause" -> {
                LOG.info("control socket: pause");
                vm.pause();
            }
            case "resume" -> {
                LOG.info("control socket: resume");
                vm.resume();
            }
            case "snapshot" -> {
                Path dir = absolutePath(request, command, "dir");
                LOG.info("control socket: snapshot to {}", dir);
                VmControl.SnapshotResult r = vm.snapshot(dir);
                reply.put("dir", r.dir().toString()).put("ram_bytes", r.ramBytes()).put("disk_bytes", r.diskBytes())
                        .put("paused_ms", r.pausedMillis());
            }
            case "migrate" -> {
                Path socket = absolutePath(request, command, "socket");
                LOG.info("control socket: migrate to {}", socket);
                VmControl.MigrationResult r = vm.migrate(socket);
                reply.put("socket", r.socket().toString()).put("downtime_ms", r.downtimeMillis()).put("rounds", r.rounds())
                        .put("bytes_sent", r.bytesSent()).put("total_ms", r.totalMillis());
            }
            default -> throw new IllegalStateException(command); // command() lets no other through
        }
        return reply;
    }

    /** The request's {@code field}: a string holding an absolute path (the VMM's working directory is not the client's). */
    private static Path absolutePath(ObjectNode request, String command, String field) throws BadRequest {
        JsonNode v = request.get(field);
        if (v == null || !v.isTextual() || v.textValue().isEmpty()) {
            throw new BadRequest(command + " needs \"" + field + "\", a string: an absolute path");
        }
        Path p;
        try {
            p = Path.of(v.textValue());
        } catch (InvalidPathException e) {
            throw new BadRequest(command + ": \"" + field + "\" is not a path: " + clip(e.getReason(), ECHO_CHARS));
        }
        if (!p.isAbsolute()) {
            throw new BadRequest(command + ": \"" + field + "\" must be an absolute path, not '" + clip(v.textValue(), ECHO_CHARS) + "'");
        }
        return p.normalize();
    }

    static ObjectNode ok() {
        return JSON.createObjectNode().put("ok", true);
    }

    static ObjectNode error(String message) {
        return JSON.createObjectNode().put("ok", false).put("error", message);
    }

    /** The exception's message on one line (its class name when it has none). */
    static String oneLine(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m.strip().replaceAll("\\s*[\\r\\n]+\\s*", " ");
    }

    /** {@code s} on one line, cut to {@code max} characters with "..." where cut. */
    static String clip(String s, int max) {
        if (s == null) {
            return "";
        }
        String line = s.replaceAll("[\\p{Cntrl}]+", " ");
        return line.length() <= max ? line : line.substring(0, max) + "...";
    }
}
