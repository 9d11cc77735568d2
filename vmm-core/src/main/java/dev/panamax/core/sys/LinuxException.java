package dev.panamax.core.sys;

/**
 * A Linux system call or ioctl failed. Carries the {@code errno} the kernel returned and the name
 * of the call, so a message reads like {@code "KVM_CREATE_VM: Permission denied (EACCES)"}.
 */
public class LinuxException extends RuntimeException {
    private final int errno;
    private final String call;

    /**
     * @param call  what was called, in the field's words (e.g. {@code "open /dev/kvm"}, {@code "KVM_RUN"})
     * @param errno the positive errno value
     */
    public LinuxException(String call, int errno) {
        super(call + ": " + Errno.describe(errno));
        this.call = call;
        this.errno = errno;
    }

    /** @return the positive errno value (see {@code errno.h}) */
    public int errno() {
        return errno;
    }

    /** @return the call that failed */
    public String call() {
        return call;
    }
}
