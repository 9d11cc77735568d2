package dev.panamax.launcher;

import picocli.CommandLine;

/**
 * Parses a memory size as QEMU and kvmtool users write it: a number of bytes with an optional
 * suffix K, M, G or T (powers of 1024, case-insensitive, optional trailing "B" or "iB").
 * A bare number means MiB, as with QEMU's {@code -m}.
 */
public final class SizeConverter implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
        return parse(value);
    }

    /**
     * @return the size in bytes
     * @throws CommandLine.TypeConversionException on anything else, e.g. {@code "12X"}
     */
    public static long parse(String value) {
        String s = value.trim().toUpperCase();
        if (s.endsWith("IB")) {
            s = s.substring(0, s.length() - 2);
        } else if (s.endsWith("B") && s.length() > 1 && !Character.isDigit(s.charAt(s.length() - 2))) {
            s = s.substring(0, s.length() - 1);
        }
        long unit = 1L << 20; // a bare number is MiB
        String digits = s;
        int suffix = "KMGT".indexOf(s.isEmpty() ? '?' : s.charAt(s.length() - 1));
        if (suffix >= 0) {
            unit = 1L << (10 * (suffix + 1));
            digits = s.substring(0, s.length() - 1);
        }
        try {
            long n = Long.parseLong(digits);
            if (n <= 0 || n > Long.MAX_VALUE / unit) {
                throw new NumberFormatException();
            }
            return n * unit;
        } catch (NumberFormatException e) {
            throw new CommandLine.TypeConversionException(
                    "'" + value + "' is not a memory size (examples: 512M, 2G, 1048576K)");
        }
    }
}
