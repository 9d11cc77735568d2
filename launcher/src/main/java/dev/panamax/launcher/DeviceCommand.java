package dev.panamax.launcher;

import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.blk.VirtioBlkServer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code panamax device}: serve an emulated PCI device to a VMM over vfio-user, as a process of
 * its own. {@code panamax device virtio-blk --socket PATH --disk FILE} serves a disk image as a
 * virtio-blk device, one client at a time, until killed (SIGTERM or ctrl-C disconnect the client
 * and remove the socket file).
 */
@Command(name = "device", mixinStandardHelpOptions = true, description = "Serve an emulated PCI device over vfio-user.",
        subcommands = DeviceCommand.VirtioBlkCommand.class)
public final class DeviceCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing device (try: panamax device virtio-blk --help)");
    }

    @Command(name = "virtio-blk", mixinStandardHelpOptions = true,
            description = {"Serve FILE as a virtio-blk device (virtio 1.x PCI) on the vfio-user socket PATH.",
                    "One client at a time; runs until killed."})
    static final class VirtioBlkCommand implements Callable<Integer> {
        @Mixin
        LoggingOptions logging;

        @Option(names = "--socket", required = true, paramLabel = "PATH", description = "The UNIX socket to listen on (must not exist).")
        Path socket;

        @Option(names = "--disk", required = true, paramLabel = "FILE", description = "The disk image: a raw file, its size rounded down to 512-byte sectors.")
        Path disk;

        @Option(names = "--read-only", description = "Open the image read-only and offer VIRTIO_BLK_F_RO; writes fail with IOERR.")
        boolean readOnly;

        @Option(names = "--serial", paramLabel = "S", defaultValue = "panamax-virtio-blk",
                description = "What VIRTIO_BLK_T_GET_ID returns: ASCII, at most 20 bytes (default: ${DEFAULT-VALUE}).")
        String serial;

        @Option(names = "--dma-messages", description = "Ignore the client's DMA_MAP fds: reach its memory by DMA_READ/DMA_WRITE messages only.")
        boolean dmaMessages;

        @Option(names = "--allow-uid", paramLabel = "UID", defaultValue = "-1",
                description = "Also serve clients running as UID (checked with SO_PEERCRED); by default only our own uid. The socket is made 0600: give UID access to it (or its directory) yourself.")
        int allowUid;

        @Override
        public Integer call() {
            if (!StandardCharsets.US_ASCII.newEncoder().canEncode(serial) || serial.length() > VirtioBlk.VIRTIO_BLK_ID_BYTES) {
                throw new PanamaxException("--serial must be ASCII of at most " + VirtioBlk.VIRTIO_BLK_ID_BYTES + " bytes, not '" + serial + "'");
            }
            VirtioBlkServer server;
            try {
                if (allowUid < -1) {
                    throw new PanamaxException("--allow-uid must be a uid (0 or more), not " + allowUid);
                }
                server = new VirtioBlkServer(socket, disk, new VirtioBlk.Options(readOnly, serial, dmaMessages), allowUid,
                        dev.panamax.vfiouser.server.VfioUserServer.Deadlines.DEFAULT);
            } catch (IllegalArgumentException | java.io.UncheckedIOException e) {
                throw new PanamaxException(e.getMessage(), e);
            }
            // SIGTERM and ctrl-C run the hooks: disconnect the client, stop, remove the socket file.
            Runtime.getRuntime().addShutdownHook(Thread.ofPlatform().name("virtio-blk-shutdown").unstarted(server::close));
            server.run();
            return 0;
        }
    }
}
