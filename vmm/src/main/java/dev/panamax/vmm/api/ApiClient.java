package dev.panamax.vmm.api;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * The client of the control socket ({@link ApiServer}, whose docstring gives the protocol): one request, one reply,
 * one connection. {@code panamax ctl} is built on it; so can tests be.
 *
 * <pre>
 * ApiClient.Reply r = ApiClient.send(Path.of("/run/vm.sock"), ApiClient.Request.snapshot(Path.of("/var/snap")));
 * if (!r.ok()) System.err.println(r.error());
 * </pre>
 */
public final class ApiClient {
    /** How long {@code status}, {@code pause} and {@code resume} wait for their reply. */
    public static final Duration SHORT_TIMEOUT = Duration.ofSeconds(10);
    /** How long {@code snapshot} and {@code migrate} wait for their reply (they copy guest RAM). */
    public static final Duration LONG_TIMEOUT = Duration.ofSeconds(120);
    /** What {@link Request#parse} accepts, for usage messages. */
    public static final String USAGE = "status, pause, resume, snapshot DIR or migrate SOCKET";

    private ApiClient() {
    }

    /**
     * A request and how long to wait for its reply.
     *
     * @param json    the request object, e.g. {@code {"command":"snapshot","dir":"/var/snap"}}
     * @param timeout from connecting to the whole reply
     */
    public record Request(ObjectNode json, Duration timeout) {
        public Request {
            Objects.requireNonNull(json, "json");
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("timeout must be positive, not " + timeout);
            }
        }

        /** @return the {@code command} field */
        public String command() {
            return json.path("command").asText();
        }

        public Request withTimeout(Duration t) {
            return new Request(json, t);
        }

        public static Request status() {
            return of("status", null, null, SHORT_TIMEOUT);
        }

        public static Request pause() {
            return of("pause", null, null, SHORT_TIMEOUT);
        }

        public static Request resume() {
            return of("resume", null, null, SHORT_TIMEOUT);
        }

        /** @param dir made absolute here: the server resolves no relative path */
        public static Request snapshot(Path dir) {
            return of("snapshot", "dir", dir.toAbsolutePath().normalize().toString(), LONG_TIMEOUT);
        }

        /** @param socket the destination's {@code --incoming} socket; made absolute here */
        public static Request migrate(Path socket) {
            return of("migrate", "socket", socket.toAbsolutePath().normalize().toString(), LONG_TIMEOUT);
        }

        /**
         * A request as a command line gives it: {@code status}, {@code pause}, {@code resume}, {@code snapshot DIR},
         * {@code migrate SOCKET}.
         *
         * @throws IllegalArgumentException an unknown command or the wrong number of arguments, in one line
         */
        public static Request parse(String command, List<String> args) {
            int want = switch (command) {
                case "status", "pause", "resume" -> 0;
                case "snapshot", "migrate" -> 1;
                default -> throw new IllegalArgumentException("unknown command '" + command + "' (" + USAGE + ")");
            };
            if (args.size() != want) {
                throw new IllegalArgumentException(want == 0 ? command + " takes no argument"
                        : command + " takes one argument, the " + (command.equals("snapshot") ? "snapshot's directory DIR" : "destination's SOCKET"));
            }
            return switch (command) {
                case "status" -> status();
                case "pause" -> pause();
                case "resume" -> resume();
                case "snapshot" -> snapshot(Path.of(args.getFirst()));
                default -> migrate(Path.of(args.getFirst()));
            };
        }

        private static Request of(String command, String field, String value, Duration timeout) {
            ObjectNode json = ApiProtocol.JSON.createObjectNode().put("command", command);
            if (field != null) {
                json.put(field, value);
            }
            return new Request(json, timeout);
        }
    }

    /**
     * A reply the server sent.
     *
     * @param json the reply object: {@code ok}, then {@code error} or the command's fields
     */
    public record Reply(ObjectNode json) {
        public boolean ok() {
            return json.path("ok").asBoolean(false);
        }

        /** @return the one-line reason of a failed request, or {@code null} when {@link #ok()} */
        public String error() {
            return ok() ? null : json.path("error").asText("no reason given");
        }

        /** @return the reply as indented JSON (several lines) */
        public String toPrettyString() {
            return json.toPrettyString();
        }

        /** @return the reply as one line of JSON, as it came */
        @Override
        public String toString() {
            return json.toString();
        }
    }

    /**
     * No reply came: the socket does not exist, nothing listens on it, the reply did not come within the request's
     * timeout, the server closed the connection first, or sent something that is not a reply. The message is one
     * line that names the socket.
     */
    public static final class NoReplyException extends RuntimeException {
        public NoReplyException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /**
     * Connects to {@code socket}, sends {@code request}, and returns the reply, all within the request's timeout.
     *
     * @throws NoReplyException when no reply came (see there)
     */
    public static Reply send(Path socket, Request request) {
        long deadline = System.nanoTime() + request.timeout().toNanos();
        SocketChannel channel = connect(socket, deadline);
        try (LineChannel line = new LineChannel(channel, ApiServer.MAX_LINE_BYTES)) {
            line.writeLine(ApiProtocol.JSON.writeValueAsBytes(request.json()), deadline);
            byte[] reply = line.readLine(deadline);
            if (reply == null) {
                throw new NoReplyException("the api socket " + socket + " closed the connection without a reply to "
                        + request.command(), null);
            }
            return new Reply(parseReply(socket, reply));
        } catch (LineChannel.DeadlineException e) {
            throw new NoReplyException("no reply from the api socket " + socket + " to " + request.command() + " within "
                    + (request.timeout().toMillis() < 1000 ? request.timeout().toMillis() + " ms" : request.timeout().toSeconds() + " s"), e);
        } catch (LineChannel.LineTooLongException e) {
            throw new NoReplyException("the api socket " + socket + " sent a reply longer than " + ApiServer.MAX_LINE_BYTES + " bytes", e);
        } catch (IOException e) {
            throw new NoReplyException("the api socket " + socket + ": " + request.command() + ": " + e.getMessage(), e);
        }
    }

    private static ObjectNode parseReply(Path socket, byte[] reply) {
        JsonNode node;
        try {
            node = ApiProtocol.JSON.readTree(reply);
        } catch (JacksonException e) {
            throw new NoReplyException("the api socket " + socket + " sent a reply that is not JSON: "
                    + ApiProtocol.clip(e.getOriginalMessage(), 200), e);
        } catch (IOException e) {
            throw new NoReplyException("the api socket " + socket + " sent an unreadable reply: " + e.getMessage(), e);
        }
        if (!(node instanceof ObjectNode object) || !object.path("ok").isBoolean()) {
            throw new NoReplyException("the api socket " + socket + " sent a reply without \"ok\": "
                    + ApiProtocol.clip(new String(reply, java.nio.charset.StandardCharsets.UTF_8), 200), null);
        }
        return object;
    }

    private static SocketChannel connect(Path socket, long deadline) {
        SocketChannel channel = null;
        try {
            channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            channel.configureBlocking(false);
            if (!channel.connect(UnixDomainSocketAddress.of(socket))) {
                try (Selector s = Selector.open()) {
                    channel.register(s, SelectionKey.OP_CONNECT);
                    while (!channel.finishConnect()) {
                        long left = deadline - System.nanoTime();
                        if (left <= 0) {
                            throw new NoReplyException("cannot connect to the api socket " + socket + ": timed out", null);
                        }
                        s.select(Math.max(1, left / 1_000_000));
                    }
                }
            }
            return channel;
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            if (e instanceof NoReplyException n) {
                throw n;
            }
            String why;
            if (!Files.exists(socket, LinkOption.NOFOLLOW_LINKS)) {
                why = "no such socket (is a panamax running with --api-socket " + socket + "?)";
            } else if (e instanceof ConnectException) {
                why = "connection refused (nothing listens there: the panamax that made it has exited?)";
            } else {
                why = e.getMessage();
            }
            throw new NoReplyException("cannot connect to the api socket " + socket + ": " + why, e);
        }
    }

    /** @return {@code request} as the one line of JSON it is sent as (without {@code '\n'}) */
    public static String line(Request request) {
        try {
            return ApiProtocol.JSON.writeValueAsString(request.json());
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
