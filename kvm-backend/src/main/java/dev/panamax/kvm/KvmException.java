package dev.panamax.kvm;

/**
 * KVM cannot be used, or refused what was asked, or a vCPU ended in an error state (a failed VM entry,
 * an internal error). The message says which in one line.
 */
public class KvmException extends RuntimeException {
    public KvmException(String message) {
        super(message);
    }

    public KvmException(String message, Throwable cause) {
        super(message, cause);
    }
}
