package dev.panamax.vfiouser.server;

import dev.panamax.vfiouser.transport.ReceivedMessage;

import java.util.ArrayDeque;

/**
 * The client requests a {@link VfioUserServer}'s reader thread has received and its request thread has not yet
 * served, with backpressure: {@link #put} blocks the reader (so it stops reading the socket, and the client's
 * sends block, as with libvfio-user, which serves one request at a time) while the queue holds
 * {@link #MAX_REQUESTS} requests, {@link #MAX_BYTES} bytes of payload or {@link #MAX_FDS} received fds. Without
 * the bound, a client that pipelines 1 MiB messages or fds grows the server's heap and fd table until OOM or
 * EMFILE. Room comes back when the request thread is {@link #done} with a request.
 */
final class RequestQueue {
    /** Most client requests waiting for the request thread, ... */
    static final int MAX_REQUESTS = 32;
    /** ... or bytes of their payloads, ... */
    static final long MAX_BYTES = 4L << 20;
    /** ... or fds they hold. */
    static final int MAX_FDS = 32;

    private final ArrayDeque<ReceivedMessage> requests = new ArrayDeque<>();
    private int count;
    private long bytes;
    private int fds;
    private boolean disconnected;
    private boolean closing;

    /**
     * Queues {@code m}, then waits while the queue is at a bound (not while closing). A DMA reply the device waits
     * for meanwhile cannot be read either: a client that pipelines past the bounds while the device waits for its
     * DMA gets that DMA timed out.
     */
    synchronized void put(ReceivedMessage m) throws InterruptedException {
        count++;
        bytes += m.payload().length;
        fds += m.fds().count();
        requests.add(m);
        notifyAll();
        while (!closing && (count >= MAX_REQUESTS || bytes >= MAX_BYTES || fds >= MAX_FDS)) {
            wait();
        }
    }

    /** @return the next request, waiting for one; null once the client is gone and every request was taken */
    synchronized ReceivedMessage take() throws InterruptedException {
        while (requests.isEmpty() && !disconnected) {
            wait();
        }
        return requests.poll();
    }

    /** The request thread is done with {@code m}: room for more. */
    synchronized void done(ReceivedMessage m) {
        count--;
        bytes -= m.payload().length;
        fds -= m.fds().count();
        notifyAll();
    }

    /** The reader is done: {@link #take} returns null after the requests already queued. */
    synchronized void disconnect() {
        disconnected = true;
        notifyAll();
    }

    /** Closes (the fds of) every request still queued, which nobody will serve. */
    synchronized void closeAll() {
        for (ReceivedMessage m : requests) {
            m.close();
        }
        requests.clear();
    }

    /** The server closes: a reader waiting for room goes on (and finds the socket shut down). */
    synchronized void close() {
        closing = true;
        notifyAll();
    }
}
