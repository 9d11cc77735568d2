package dev.panamax.tests.harness;

import java.time.Duration;
import java.util.List;

/**
 * L1's serial console as {@link NestedHarness} reads it: the markers L1's init prints around the command
 * ({@code PANAMAX-L1-BEGIN:NONCE}, {@code PANAMAX-L1-EXIT:NONCE=STATUS}, {@code PANAMAX-L1-ERROR: what}; see
 * the harness's class comment, "How the command gets in and the status comes out") and the result read from
 * them.
 */
final class L1Console {
    static final String BEGIN = "PANAMAX-L1-BEGIN:";
    static final String EXIT = "PANAMAX-L1-EXIT:";
    static final String ERROR = "PANAMAX-L1-ERROR:";
    private static final int TAIL_LINES = 40;

    private L1Console() {
    }

    /**
     * Turns L1's console into a result: the lines between {@code BEGIN:nonce} and {@code EXIT:nonce=N}.
     * Text before the exit marker on its line (a last line without newline) belongs to the output.
     *
     * @throws NestedHarnessException if there is no exit marker
     */
    static Result parse(List<String> lines, String nonce, Duration elapsed, int qemuStatus, List<String> qemuStderr) {
        String begin = BEGIN + nonce;
        String exit = EXIT + nonce + "=";
        int first = -1;
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (first < 0 && line.endsWith(begin)) {
                first = i + 1;
                continue;
            }
            int at = line.indexOf(exit);
            if (at >= 0) {
                String digits = line.substring(at + exit.length()).strip();
                int status;
                try {
                    status = Integer.parseInt(digits);
                } catch (NumberFormatException e) {
                    throw new NestedHarnessException("L1 printed a malformed exit marker: '" + line + "'", lines);
                }
                var out = new StringBuilder();
                for (int j = Math.max(first, 0); j < i; j++) {
                    out.append(lines.get(j)).append('\n');
                }
                if (at > 0) {
                    out.append(line, 0, at).append('\n');
                }
                return new Result(status, out.toString(), elapsed);
            }
        }
        String reason = lines.stream().filter(l -> l.contains(ERROR)).findFirst()
                .map(l -> "L1 init failed:" + l.substring(l.indexOf(ERROR) + ERROR.length()))
                .orElse(first < 0
                        ? "L1 ended (QEMU exit status " + qemuStatus + ") before starting the command"
                        : "L1 ended (QEMU exit status " + qemuStatus + ") while the command ran, without reporting its status (kernel panic?)");
        throw new NestedHarnessException(reason + "\n--- last console lines ---\n" + tail(lines)
                + "--- last QEMU stderr lines ---\n" + tail(qemuStderr), lines);
    }

    private static String tail(List<String> lines) {
        var sb = new StringBuilder();
        for (String l : lines.subList(Math.max(0, lines.size() - TAIL_LINES), lines.size())) {
            sb.append(l).append('\n');
        }
        return sb.toString();
    }
}
