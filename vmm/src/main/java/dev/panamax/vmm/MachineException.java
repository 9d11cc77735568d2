package dev.panamax.vmm;

/**
 * An error the user of a machine can act on: a kernel that is not a bzImage, more memory than the host has, a
 * device that cannot be assigned. A program (the {@code panamax} command) shows its message as one line; a setting
 * of the {@link MachineConfig} at fault throws the subclass {@link ConfigException}, which names it.
 */
public class MachineException extends RuntimeException {
    public MachineException(String message) {
        super(message);
    }

    public MachineException(String message, Throwable cause) {
        super(message, cause);
    }
}
