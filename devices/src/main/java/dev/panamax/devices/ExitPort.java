package dev.panamax.devices;

import dev.panamax.core.bus.BusDevice;

import java.util.function.IntConsumer;

/**
 * The Panamax exit port: a guest writes one byte N to I/O port {@value #PORT} and the VM stops;
 * {@code panamax} then exits with status N. This is how a script in the guest returns its verdict
 * (like QEMU's {@code isa-debug-exit}, except that the status is N itself, not {@code 2N+1}).
 *
 * <p>From a guest shell, with {@code /dev/port}:
 * <pre>printf '\003' | dd of=/dev/port bs=1 seek=244 count=1 conv=notrunc   # exit status 3</pre>
 * Reads return 0.
 */
public final class ExitPort implements BusDevice {
    /** The port: 0xF4 (244), where test setups usually put isa-debug-exit. */
    public static final int PORT = 0xF4;

    private final IntConsumer onExit;

    /** @param onExit receives the status byte, 0..255 */
    public ExitPort(IntConsumer onExit) {
        this.onExit = onExit;
    }

    @Override
    public long read(long offset, int size) {
        return 0;
    }

    @Override
    public void write(long offset, int size, long value) {
        onExit.accept((int) (value & 0xFF));
    }
}
