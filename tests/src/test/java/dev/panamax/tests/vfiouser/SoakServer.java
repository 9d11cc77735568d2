package dev.panamax.tests.vfiouser;

import dev.panamax.core.sys.Footprint;
import dev.panamax.virtio.blk.VirtioBlk;
import dev.panamax.virtio.blk.VirtioBlkServer;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.file.Path;

/**
 * The server side of the vfio-user soak ({@link VfioUserSoakTest}) in its own process: Panamax's virtio-blk
 * vfio-user server ({@link VirtioBlkServer}) on {@code SOCKET} over {@code DISK}, plus a line protocol on stdin so
 * the test can read this process's {@link Footprint}: {@code sample} prints {@link Footprint#line()} (after
 * {@code System.gc()}); {@code quit} or end of input closes the server and exits 0.
 *
 * <pre>java -cp ... dev.panamax.tests.vfiouser.SoakServer SOCKET DISK</pre>
 */
public final class SoakServer {
    static final String LISTENING = "soak-server: listening";

    private SoakServer() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: SoakServer SOCKET DISK");
            System.exit(2);
        }
        VirtioBlkServer server = new VirtioBlkServer(Path.of(args[0]), Path.of(args[1]), VirtioBlk.Options.DEFAULT);
        Thread loop = Thread.ofPlatform().name("soak-server-accept").start(server::run);
        System.out.println(LISTENING);
        System.out.flush();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in))) {
            for (String line; (line = in.readLine()) != null && !line.equals("quit"); ) {
                if (line.equals("sample")) {
                    System.out.println("soak-server: " + Footprint.afterGc().line());
                    System.out.flush();
                }
            }
        }
        server.close();
        loop.join(5000);
        System.exit(loop.isAlive() ? 1 : 0);
    }
}
