package dev.panamax.launcher;

import dev.panamax.vmm.Verdict;
import dev.panamax.vmm.api.ApiClient;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code panamax ctl --api-socket PATH COMMAND [ARG]}: one request to a running machine's control socket
 * ({@code panamax run --api-socket PATH}; the protocol is {@link dev.panamax.vmm.api.ApiServer}'s), its reply printed
 * as JSON on stdout. Exit status 0 when the request was done, {@value #REFUSED_STATUS} when the VMM refused it (its
 * reason also on stderr), {@value Verdict#ERROR_STATUS} when no reply came (no such socket, nothing listening, the
 * timeout passed).
 */
@Command(name = "ctl", mixinStandardHelpOptions = true,
        description = {"Send one request to a running panamax (started with --api-socket PATH) and print its reply as JSON.",
                "COMMAND is status, pause, resume, snapshot DIR or migrate SOCKET (a destination's --incoming socket).",
                "Exit status: 0 if done, " + CtlCommand.REFUSED_STATUS + " if the VMM refused (the reason on stderr), "
                        + Verdict.ERROR_STATUS + " if no reply came."})
public final class CtlCommand implements Callable<Integer> {
    /** The exit status of a request the VMM replied to with {@code "ok": false}. */
    static final int REFUSED_STATUS = 1;

    @Mixin
    LoggingOptions logging;

    @Option(names = "--api-socket", required = true, paramLabel = "PATH", description = "The machine's control socket.")
    Path apiSocket;

    @Option(names = "--timeout", paramLabel = "DURATION", converter = DurationConverter.class,
            description = "How long to wait for the reply (default: 10s; 120s for snapshot and migrate).")
    Duration timeout;

    @Parameters(index = "0", paramLabel = "COMMAND", description = "status, pause, resume, snapshot or migrate.")
    String command;

    @Parameters(index = "1..*", paramLabel = "ARG", description = "snapshot: the directory DIR to write; migrate: the SOCKET to migrate to.")
    List<String> args = new ArrayList<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        ApiClient.Request request;
        try {
            request = ApiClient.Request.parse(command, args);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage(), e);
        }
        if (timeout != null) {
            request = request.withTimeout(timeout);
        }
        ApiClient.Reply reply;
        try {
            reply = ApiClient.send(apiSocket, request);
        } catch (ApiClient.NoReplyException e) {
            throw new PanamaxException(e.getMessage(), e);
        }
        PrintWriter out = spec.commandLine().getOut();
        out.println(reply.toPrettyString());
        out.flush();
        if (!reply.ok()) {
            PrintWriter err = spec.commandLine().getErr();
            err.println("panamax: error: " + reply.error());
            err.flush();
            return REFUSED_STATUS;
        }
        return 0;
    }
}
