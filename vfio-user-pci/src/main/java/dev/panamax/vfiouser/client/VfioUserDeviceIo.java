package dev.panamax.vfiouser.client;

import dev.panamax.core.sys.Errno;
import dev.panamax.core.sys.Libc;
import dev.panamax.vfio.VfioDeviceInfo;
import dev.panamax.vfio.VfioDeviceIo;
import dev.panamax.vfio.VfioIrqInfo;
import dev.panamax.vfio.VfioIrqSet;
import dev.panamax.vfio.VfioRegionInfo;
import dev.panamax.vfio.bindings.vfio_h;
import dev.panamax.vfiouser.protocol.DeviceGetInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetIrqInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionInfoCodec;
import dev.panamax.vfiouser.protocol.DeviceResetCodec;
import dev.panamax.vfiouser.protocol.DeviceSetIrqsCodec;
import dev.panamax.vfiouser.protocol.RegionReadCodec;
import dev.panamax.vfiouser.protocol.RegionWriteCodec;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

/**
 * The device I/O ops of a vfio-user device (QEMU: {@code hw/vfio-user/device.c}): each {@link VfioDeviceIo} call as
 * vfio-user requests over the connection's {@link VfioUserProxy} (spec, "VFIO_USER_DEVICE_GET_INFO",
 * "VFIO_USER_DEVICE_GET_REGION_INFO", "VFIO_USER_DEVICE_GET_IRQ_INFO", "VFIO_USER_DEVICE_SET_IRQS",
 * "VFIO_USER_REGION_READ", "VFIO_USER_REGION_WRITE", "VFIO_USER_DEVICE_RESET"), and {@code mmap} of the fds that
 * region info replies carry.
 *
 * <p>Posted writes: a {@link #regionWrite} to a BAR (region index 0..5) is sent without waiting for its reply, when
 * {@link VfioUserClient.Options#postedWrites()}. The server handles commands in the order it receives them (spec,
 * "Command Concurrency"), so a later read or any other request observes the write. Unlike a request with the
 * spec's {@code No_reply} flag, it is still answered: the receive thread checks each reply; an error reply or a
 * short write is logged and counted ({@link VfioUserClient#postedWriteErrors()},
 * {@link VfioUserClient#flushPostedWrites()}), a missing reply breaks the device as any other. At most
 * {@link VfioUserClient.Options#maxPostedWrites()} are outstanding; the next writer waits. Configuration space
 * writes (region 7) and all other requests wait for their reply. QEMU's client (since QEMU 10.1, "vfio-user:
 * support posted writes", {@code hw/vfio-user/device.c}) posts differently: it sets {@code VFIO_USER_NO_REPLY} on a
 * posted write and waits for nothing, and posts no write at all once any region of the device is mappable (a
 * region info reply with {@code VFIO_REGION_INFO_FLAG_MMAP}; the guest's direct accesses would not be ordered
 * behind the socket), or when {@code x-no-posted-writes} is set. Panamax posts BAR writes whether or not regions
 * are mappable; turn posting off with {@link VfioUserClient.Options#withPostedWrites(boolean)}.
 *
 * <p>Broken device: region reads return all-ones (every byte 0xFF, as a PCI read of an absent device), writes,
 * SET_IRQS and reset are dropped, info calls and {@code mmap} throw {@link VfioUserDeviceBrokenException}. Error
 * replies (the server refusing one request) are no breakage: the call throws {@link VfioUserClientException} with
 * the errno.
 *
 * <p>Not supported: REGION_WRITE_MULTI (each write is one message), migration. DEVICE_GET_REGION_IO_FDS is
 * {@link RegionIoFds}.
 */
final class VfioUserDeviceIo implements VfioDeviceIo {
    private static final Logger LOG = LoggerFactory.getLogger(VfioUserDeviceIo.class);
    private static final long PAGE = 4096;

    private final VfioUserProxy proxy;
    private final String name;
    private final Map<Integer, Integer> regionFds = new ConcurrentHashMap<>();
    private final Map<Integer, VfioRegionInfo> regionInfos = new ConcurrentHashMap<>();

    VfioUserDeviceIo(VfioUserProxy proxy) {
        this.proxy = proxy;
        this.name = proxy.name();
    }

    @Override
    public String name() {
        return "vfio-user:" + name;
    }

    // ---------------------------------------------------------------- info

    @Override
    public VfioDeviceInfo deviceInfo() {
        ByteBuf out = Unpooled.buffer();
        DeviceGetInfoCodec.encode(DeviceGetInfoCodec.DeviceInfo.request(), out);
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_GET_INFO, out, "DEVICE_GET_INFO")) {
            DeviceGetInfoCodec.DeviceInfo d = proxy.decode(m, "DEVICE_GET_INFO", DeviceGetInfoCodec::decodeReply);
            if (d.numRegions() > 64 || d.numIrqs() > 64) {
                throw proxy.breakNow("DEVICE_GET_INFO reply claims " + d.numRegions() + " regions and " + d.numIrqs() + " IRQ indexes");
            }
            return new VfioDeviceInfo(d.flags(), (int) d.numRegions(), (int) d.numIrqs());
        }
    }

    /**
     * {@code VFIO_USER_DEVICE_GET_REGION_INFO} with its capability chain. For a mappable region the fd that comes
     * with the reply is kept (until {@link #close}) for {@link #mmap}.
     */
    @Override
    public VfioRegionInfo regionInfo(int index) {
        long argsz = 1024;
        for (int attempt = 0; ; attempt++) {
            ByteBuf out = Unpooled.buffer();
            DeviceGetRegionInfoCodec.encode(new DeviceGetRegionInfoCodec.Request(argsz, index), out);
            String what = "DEVICE_GET_REGION_INFO of region " + index;
            try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_GET_REGION_INFO, out, what)) {
                DeviceGetRegionInfoCodec.Reply r = proxy.decode(m, what, DeviceGetRegionInfoCodec::decodeReply);
                VfioRegionInfo info = r.info();
                if (info.index() != index) {
                    throw proxy.breakNow(what + ": the reply is for region " + info.index());
                }
                if (r.argsz() > argsz) {
                    if (attempt > 0 || r.argsz() > VfioUserProxy.REGION_INFO_MAX) {
                        throw proxy.breakNow(what + ": the reply needs argsz " + r.argsz() + " after we offered " + argsz);
                    }
                    argsz = r.argsz();
                    continue; // ask again with room for the capabilities (spec, "Message sizes")
                }
                try {
                    DeviceGetRegionInfoCodec.checkFds(info, m.fds().count());
                } catch (VfioUserProtocolException e) {
                    throw proxy.breakNow(e.getMessage());
                }
                if (m.fds().count() == 1) {
                    checkFdSize(what, info, m.fds().peek(0));
                    Integer old = regionFds.put(index, m.fds().take(0));
                    if (old != null) {
                        Libc.close(old);
                    }
                }
                regionInfos.put(index, info);
                return info;
            }
        }
    }

    /**
     * The region's fd must hold every byte that may be mmapped from it: {@code [offset + area.offset, offset +
     * area.offset + area.size)} for each mmap area (the whole region without a sparse capability) must end at or
     * before the file's size ({@code fstat}). A mapping past a file's end is SIGBUS on access, in this process or,
     * through a memory slot, a failed {@code KVM_RUN}. The offsets themselves were checked by
     * {@link VfioRegionInfo#parse} (areas inside the region, the region inside {@code off_t}).
     *
     * @throws VfioUserDeviceBrokenException (the device is broken) when the fd is too small
     */
    private void checkFdSize(String what, VfioRegionInfo info, int fd) {
        long need = 0;
        for (VfioRegionInfo.Area a : info.mmapAreas()) {
            if (a.size() != 0) {
                need = Math.max(need, info.offset() + a.offset() + a.size()); // no overflow: parse checked offset + size
            }
        }
        long have;
        try {
            have = Libc.fstatSize(fd);
        } catch (RuntimeException e) {
            throw proxy.breakNow(what + ": fstat of its fd failed: " + e.getMessage());
        }
        if (have < need) {
            throw proxy.breakNow(String.format("%s: its fd has %d bytes, the region's mmap areas need 0x%x", what, have, need));
        }
    }

    @Override
    public VfioIrqInfo irqInfo(int index) {
        ByteBuf out = Unpooled.buffer();
        DeviceGetIrqInfoCodec.encode(DeviceGetIrqInfoCodec.IrqInfo.request(index), out);
        String what = "DEVICE_GET_IRQ_INFO of IRQ index " + index;
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_GET_IRQ_INFO, out, what)) {
            DeviceGetIrqInfoCodec.IrqInfo i = proxy.decode(m, what, DeviceGetIrqInfoCodec::decodeReply);
            if (i.index() != index || i.count() > 2048) {
                throw proxy.breakNow(what + ": the reply is for index " + i.index() + " with " + i.count() + " vectors");
            }
            return new VfioIrqInfo(index, i.flags(), (int) i.count());
        }
    }

    // ---------------------------------------------------------------- interrupts, reset

    /**
     * {@code VFIO_USER_DEVICE_SET_IRQS}. Eventfds travel as SCM_RIGHTS, at most the server's {@code max_msg_fds} per
     * message: a longer set is sent as several requests with their own {@code start} and {@code count}, and a run
     * of -1 (de-assign) as a request without fds (as QEMU: "must send all valid FDs or all invalid FDs in single
     * msg"). Dropped on a broken device.
     *
     * @throws VfioUserClientException when the server refuses (then the requests before it took effect)
     */
    @Override
    public void setIrqs(VfioIrqSet set) {
        int data = set.flags() & vfio_h.VFIO_IRQ_SET_DATA_TYPE_MASK();
        if (data != vfio_h.VFIO_IRQ_SET_DATA_EVENTFD()) {
            byte[] bools = new byte[set.bools().length];
            for (int i = 0; i < bools.length; i++) {
                bools[i] = (byte) (set.bools()[i] ? 1 : 0);
            }
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start(), set.count(), bools), new int[0]);
            return;
        }
        int[] fds = set.eventfds();
        if (fds.length == 0) {
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start(), 0, new byte[0]), fds);
            return;
        }
        int maxFds = proxy.server().effectiveMaxMsgFds();
        int i = 0;
        while (i < fds.length) {
            boolean valid = fds[i] >= 0;
            if (valid && maxFds == 0) {
                throw new VfioUserClientException(Errno.EINVAL, "vfio-user " + name + ": the server takes no fds (max_msg_fds 0), cannot pass eventfds");
            }
            int n = 1;
            while (i + n < fds.length && (fds[i + n] >= 0) == valid && (!valid || n < maxFds)) {
                n++;
            }
            int[] chunk = valid ? java.util.Arrays.copyOfRange(fds, i, i + n) : new int[0];
            sendIrqSet(new DeviceSetIrqsCodec.IrqSet(set.flags(), set.index(), set.start() + i, n, new byte[0]), chunk);
            i += n;
        }
    }

    private void sendIrqSet(DeviceSetIrqsCodec.IrqSet s, int[] fds) {
        ByteBuf out = Unpooled.buffer();
        DeviceSetIrqsCodec.encode(s, out);
        String what = "DEVICE_SET_IRQS " + dev.panamax.vfio.VfioNames.irqSet(s.flags(), (int) s.index(), (int) s.start(), (int) s.count());
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_SET_IRQS, out, fds, what)) {
            proxy.decode(m, what, b -> {
                DeviceResetCodec.decodeEmpty(b, VfioUserCommand.DEVICE_SET_IRQS);
                return null;
            });
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: {} dropped, the device is broken", name, what);
        }
    }

    /** {@code VFIO_USER_DEVICE_RESET}; dropped on a broken device. @throws VfioUserClientException when refused */
    @Override
    public void reset() {
        try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.DEVICE_RESET, Unpooled.EMPTY_BUFFER, "DEVICE_RESET")) {
            proxy.decode(m, "DEVICE_RESET", b -> {
                DeviceResetCodec.decodeEmpty(b, VfioUserCommand.DEVICE_RESET);
                return null;
            });
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: DEVICE_RESET dropped, the device is broken", name);
        }
    }

    // ---------------------------------------------------------------- regions

    /**
     * {@code VFIO_USER_REGION_READ}, split into pieces of at most {@link VfioUserProxy#maxXfer()} bytes. On a broken
     * device (also one that breaks during this call) {@code buffer} is filled with 0xFF.
     *
     * @throws VfioUserClientException when the server refuses the read (error reply)
     */
    @Override
    public void regionRead(int index, long offset, MemorySegment buffer) {
        long done = 0;
        long total = buffer.byteSize();
        try {
            while (done < total) {
                int n = (int) Math.min(total - done, proxy.maxXfer());
                long at = offset + done;
                ByteBuf out = Unpooled.buffer(RegionReadCodec.SIZE);
                RegionReadCodec.encode(new RegionReadCodec.Request(at, index, n), out);
                String what = "REGION_READ of " + n + " bytes at 0x" + Long.toHexString(at) + " of region " + index;
                try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.REGION_READ, out, what)) {
                    RegionReadCodec.Reply r = proxy.decode(m, what, b -> RegionReadCodec.decodeReply(b, proxy.maxXfer()));
                    if (r.offset() != at || r.region() != index || r.data().length != n) {
                        throw proxy.breakNow(what + ": the reply has " + r.data().length + " bytes at 0x"
                                + Long.toHexString(r.offset()) + " of region " + r.region());
                    }
                    MemorySegment.copy(r.data(), 0, buffer, JAVA_BYTE, done, n);
                }
                done += n;
            }
        } catch (VfioUserDeviceBrokenException e) {
            buffer.fill((byte) 0xFF);
        }
    }

    /**
     * {@code VFIO_USER_REGION_WRITE}, split into pieces of at most {@link VfioUserProxy#maxXfer()} bytes. BAR writes are
     * posted when {@link VfioUserClient.Options#postedWrites()} (see the class comment); other writes wait for the reply. Dropped
     * on a broken device.
     *
     * @throws VfioUserClientException when the server refuses a write that was not posted
     */
    @Override
    public void regionWrite(int index, long offset, MemorySegment buffer) {
        boolean posted = proxy.options().postedWrites() && index >= 0 && index <= vfio_h.VFIO_PCI_BAR5_REGION_INDEX();
        long done = 0;
        long total = buffer.byteSize();
        try {
            while (done < total) {
                int n = (int) Math.min(total - done, proxy.maxXfer());
                long at = offset + done;
                ByteBuf out = Unpooled.buffer(RegionWriteCodec.SIZE + n);
                RegionWriteCodec.encode(at, index, buffer.asSlice(done, n), out); // the data's one copy before send
                String what = "REGION_WRITE of " + n + " bytes at 0x" + Long.toHexString(at) + " of region " + index;
                if (posted) {
                    proxy.post(VfioUserCommand.REGION_WRITE, out, what, m -> checkPostedWriteReply(m, what, at, index, n));
                } else {
                    try (ReceivedMessage m = proxy.requestOk(VfioUserCommand.REGION_WRITE, out, what)) {
                        checkWriteReply(m, what, at, index, n);
                    }
                }
                done += n;
            }
        } catch (VfioUserDeviceBrokenException e) {
            LOG.debug("vfio-user {}: region {} write dropped, the device is broken", name, index);
        }
    }

    private void checkWriteReply(ReceivedMessage m, String what, long at, int index, int n) {
        RegionWriteCodec.Reply r = proxy.decode(m, what, RegionWriteCodec::decodeReply);
        if (r.offset() != at || r.region() != index || r.count() > n) {
            throw proxy.breakNow(what + ": the reply says " + r.count() + " bytes at 0x" + Long.toHexString(r.offset())
                    + " of region " + r.region());
        }
        if (r.count() < n) {
            throw new VfioUserClientException(Errno.EIO, "vfio-user " + name + ": " + what + ": the server wrote only " + r.count());
        }
    }

    /** The receive thread's check of a posted write's reply: @return null, or what the server did not write */
    private String checkPostedWriteReply(ReceivedMessage m, String what, long at, int index, int n) {
        RegionWriteCodec.Reply r;
        try {
            r = RegionWriteCodec.decodeReply(m.payloadBuffer());
        } catch (VfioUserProtocolException e) {
            throw proxy.breakNow("posted " + what + ": bad reply: " + e.getMessage());
        }
        if (r.offset() != at || r.region() != index || r.count() > n) {
            throw proxy.breakNow("posted " + what + ": the reply says " + r.count() + " bytes at 0x"
                    + Long.toHexString(r.offset()) + " of region " + r.region());
        }
        return r.count() < n ? what + ": the server wrote only " + r.count() + " bytes" : null;
    }

    /**
     * Maps {@code [offset, offset + size)} of region {@code index} from the fd its region info reply carried, at the
     * region's {@code offset} in that fd (spec, "VFIO_USER_DEVICE_GET_REGION_INFO"). Unmap with {@code Libc.munmap}.
     *
     * @throws IllegalArgumentException when the region is not mappable there or the range is not page aligned
     * @throws VfioUserDeviceBrokenException on a broken device
     */
    @Override
    public MemorySegment mmap(int index, long offset, long size) {
        proxy.checkUsable();
        VfioRegionInfo info = regionInfos.get(index);
        if (info == null) {
            info = regionInfo(index);
        }
        Integer fd = regionFds.get(index);
        String what = String.format("vfio-user %s: mmap of region %d bytes 0x%x+0x%x", name, index, offset, size);
        if (fd == null) {
            throw new IllegalArgumentException(what + ": the region is not mappable (no fd)");
        }
        if (size <= 0 || offset < 0 || (offset | size) % PAGE != 0) {
            throw new IllegalArgumentException(what + ": not page aligned");
        }
        boolean inside = false;
        for (VfioRegionInfo.Area a : info.mmapAreas()) {
            // unsigned and without overflow: [offset, offset + size) inside [a.offset, a.offset + a.size)
            inside |= Long.compareUnsigned(offset, a.offset()) >= 0
                    && VfioRegionInfo.inside(new VfioRegionInfo.Area(offset - a.offset(), size), a.size());
        }
        if (!inside) {
            throw new IllegalArgumentException(what + ": not inside an mmap area " + info.mmapAreas());
        }
        return Libc.mmap(size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, info.offset() + offset, what);
    }

    /** Closes every fd the server gave with region info; mappings made with {@link #mmap} stay valid until unmapped. */
    @Override
    public void close() {
        for (Integer index : List.copyOf(regionFds.keySet())) {
            Integer fd = regionFds.remove(index);
            if (fd != null) {
                Libc.close(fd);
            }
        }
    }
}
