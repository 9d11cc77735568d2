package dev.panamax.firmware;

/**
 * A boot input that cannot be used: a file that is not a loadable bzImage, a command line or an
 * initrd that does not fit, guest memory too small for the boot layout. The message is one line
 * that names the file or value and what is wrong, e.g.
 * {@code "vmlinuz: not a bzImage (no HdrS magic at 0x202)"}.
 */
public class BootException extends Exception {
    /** @param message one line: the file or value, then what is wrong with it */
    public BootException(String message) {
        super(message);
    }

    /**
     * @param message one line: the file or value, then what is wrong with it
     * @param cause   the underlying error (e.g. an {@link java.io.IOException})
     */
    public BootException(String message, Throwable cause) {
        super(message, cause);
    }
}
