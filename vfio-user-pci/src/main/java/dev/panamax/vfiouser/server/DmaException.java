package dev.panamax.vfiouser.server;

/** A device DMA could not be done: the address is not mapped by DMA_MAP, the mapping forbids the access, or the client failed or went away. */
public class DmaException extends RuntimeException {
    public DmaException(String message) {
        super(message);
    }

    public DmaException(String message, Throwable cause) {
        super(message, cause);
    }
}
