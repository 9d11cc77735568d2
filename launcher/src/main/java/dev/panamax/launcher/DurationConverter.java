package dev.panamax.launcher;

import picocli.CommandLine;

import java.time.Duration;

/** Parses a duration as {@code 90}, {@code 90s}, {@code 5m}, {@code 1h} or {@code 500ms} (a bare number is seconds). */
public final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
    @Override
    public Duration convert(String value) {
        String s = value.trim().toLowerCase();
        try {
            if (s.endsWith("ms")) {
                return positive(Duration.ofMillis(Long.parseLong(s.substring(0, s.length() - 2))), value);
            }
            long n = Long.parseLong(s.replaceAll("[smh]$", ""));
            return positive(switch (s.charAt(s.length() - 1)) {
                case 'm' -> Duration.ofMinutes(n);
                case 'h' -> Duration.ofHours(n);
                default -> Duration.ofSeconds(n);
            }, value);
        } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
            throw new CommandLine.TypeConversionException("'" + value + "' is not a duration (examples: 120s, 5m)");
        }
    }

    private static Duration positive(Duration d, String value) {
        if (d.isNegative() || d.isZero()) {
            throw new CommandLine.TypeConversionException("'" + value + "' is not a positive duration");
        }
        return d;
    }
}
