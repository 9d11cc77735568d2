package dev.panamax.launcher;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ConfiguratorRank;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.spi.ContextAwareBase;

/**
 * Panamax's logging set-up, in code rather than a {@code logback.xml}: logback finds it through
 * {@code META-INF/services/ch.qos.logback.classic.spi.Configurator} (the logback manual, "Configuration",
 * "Configuration at initialization") before it would look for an XML file, so the start parses no XML.
 * Panamax's own messages go to stderr as {@code panamax: MESSAGE} (stdout belongs to the guest's console), at
 * INFO and above; the exits and device accesses ({@code dev.panamax.trace.*}) are off until {@code --trace}.
 * A {@code -Dlogback.configurationFile} or a {@code logback-test.xml} on the class path (the tests' own) wins:
 * this configurator then steps aside and logback's usual search runs.
 */
@ConfiguratorRank(ConfiguratorRank.CUSTOM_NORMAL_PRIORITY)
public final class LogConfigurator extends ContextAwareBase implements Configurator {
    /** The layout of every line: {@code panamax: } and the message. */
    static final String PATTERN = "panamax: %msg%n";
    /** The logger of the exits and device accesses, off unless {@code --trace}. */
    static final String TRACE_LOGGER = "dev.panamax.trace";

    @Override
    public ExecutionStatus configure(LoggerContext context) {
        if (System.getProperty("logback.configurationFile") != null
                || LogConfigurator.class.getClassLoader().getResource("logback-test.xml") != null) {
            return ExecutionStatus.NEUTRAL;
        }
        PatternLayoutEncoder encoder = new PatternLayoutEncoder();
        encoder.setContext(context);
        encoder.setPattern(PATTERN);
        encoder.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(context);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(encoder);
        stderr.start();
        context.getLogger(TRACE_LOGGER).setLevel(Level.OFF);
        ch.qos.logback.classic.Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.INFO);
        root.addAppender(stderr);
        return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
}
