package dev.panamax.launcher;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Option;

/** Options every command shares: how much Panamax tells about itself. */
public final class LoggingOptions {
    static volatile boolean debug;

    @Option(names = "--debug", description = "Log Panamax's own steps and show stack traces of errors.")
    void debug(boolean on) {
        debug = on;
        if (on) {
            level(Logger.ROOT_LOGGER_NAME, Level.DEBUG);
        }
    }

    @Option(names = "--trace", description = "Print every VM exit and device access (port and MMIO names, values). Slow.")
    void trace(boolean on) {
        if (on) {
            level("dev.panamax.trace", Level.TRACE);
        }
    }

    private static void level(String logger, Level level) {
        ((Logger) LoggerFactory.getLogger(logger)).setLevel(level);
    }
}
