package dev.panamax.vfiouser.client;

import dev.panamax.core.memory.IoEventFds;
import dev.panamax.core.sys.Libc;
import dev.panamax.vfiouser.bindings.vfio_user_h;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec;
import dev.panamax.vfiouser.protocol.DeviceGetRegionIoFdsCodec.SubRegion;
import dev.panamax.vfiouser.protocol.VfioUserCommand;
import dev.panamax.vfiouser.protocol.VfioUserProtocolException;
import dev.panamax.vfiouser.transport.ReceivedMessage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * The client's {@code VFIO_USER_DEVICE_GET_REGION_IO_FDS} (spec, same section): asks for a region's sub-regions and
 * keeps the ioeventfds among them that a VMM can register with KVM ({@code KVM_IOEVENTFD}, linux/kvm.h). "It is the
 * client's responsibility to verify the requested values": a sub-region is dropped, with one WARN line, unless its
 * type is {@code VFIO_USER_IO_FD_TYPE_IOEVENTFD}, its flags at most {@code KVM_IOEVENTFD_FLAG_DATAMATCH} (an MMIO
 * region: no {@code _PIO}), its size 0, 1, 2, 4 or 8 (a datamatch only with a size, fitting it) and
 * {@code [offset, offset + max(size, 1))} inside the region. Its doorbells then go by REGION_WRITE as before.
 */
final class RegionIoFds {
    private static final Logger LOG = LoggerFactory.getLogger(RegionIoFds.class);
    /** linux/kvm.h {@code KVM_IOEVENTFD_FLAG_DATAMATCH}. */
    static final int KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
    /** Most sub-regions we take in one reply (the argsz we offer after the first try). */
    static final int MAX_SUB_REGIONS = 1024;

    /**
     * One ioeventfd of a region, as the server offered it.
     *
     * @param offset    byte offset of the doorbell in the region
     * @param size      0 (any write), 1, 2, 4 or 8 bytes
     * @param datamatch the value a write must carry, or empty
     * @param fd        the eventfd, owned by the caller (close it after deassigning)
     */
    record IoEventFd(long offset, int size, OptionalLong datamatch, int fd) {
    }

    private RegionIoFds() {
    }

    /**
     * Asks the server for region {@code index}'s io fds.
     *
     * @param regionSize the region's size in bytes (from its region info)
     * @return the usable ioeventfds, each with its own fd (a duplicate of the one that came); empty when the server answers
     *         an error (it offers none) or has none
     * @throws VfioUserDeviceBrokenException when the reply breaks the protocol or does not come
     */
    static List<IoEventFd> query(VfioUserProxy proxy, int index, long regionSize) {
        String what = "DEVICE_GET_REGION_IO_FDS of region " + index;
        long argsz = DeviceGetRegionIoFdsCodec.SIZE + (long) DeviceGetRegionIoFdsCodec.SUB_REGION_SIZE * VfioUserClient.MAX_MSG_FDS;
        for (int attempt = 0; ; attempt++) {
            ByteBuf out = Unpooled.buffer();
            DeviceGetRegionIoFdsCodec.encode(new DeviceGetRegionIoFdsCodec.Request(argsz, index), out);
            ReceivedMessage m;
            try {
                m = proxy.requestOk(VfioUserCommand.DEVICE_GET_REGION_IO_FDS, out, what);
            } catch (VfioUserDeviceBrokenException e) {
                throw e;
            } catch (VfioUserClientException e) {
                LOG.debug("{}: {}", what, e.getMessage());
                return List.of();
            }
            try (m) {
                DeviceGetRegionIoFdsCodec.Reply r = proxy.decode(m, what, DeviceGetRegionIoFdsCodec::decodeReply);
                if (r.index() != index) {
                    throw proxy.breakNow(what + ": the reply is for region " + r.index());
                }
                if (r.argsz() > argsz) {
                    long most = DeviceGetRegionIoFdsCodec.SIZE + (long) DeviceGetRegionIoFdsCodec.SUB_REGION_SIZE * MAX_SUB_REGIONS;
                    if (attempt > 0 || r.argsz() > most) {
                        throw proxy.breakNow(what + ": the reply needs argsz " + r.argsz() + " after we offered " + argsz);
                    }
                    argsz = r.argsz();
                    continue;
                }
                try {
                    DeviceGetRegionIoFdsCodec.checkFds(r, m.fds().count());
                } catch (VfioUserProtocolException e) {
                    throw proxy.breakNow(what + ": " + e.getMessage());
                }
                return take(what, r, m, regionSize);
            }
        }
    }

    /** Each usable sub-region with a duplicate of its fd (the message closes the ones that came). */
    private static List<IoEventFd> take(String what, DeviceGetRegionIoFdsCodec.Reply r, ReceivedMessage m, long regionSize) {
        List<IoEventFd> result = new ArrayList<>();
        try {
            for (SubRegion s : r.subRegions()) {
                String problem = problem(s, regionSize);
                if (problem != null) {
                    LOG.warn("{}: sub-region {} not used: {}", what, s, problem);
                    continue;
                }
                int fd = Libc.dup(m.fds().peek((int) s.fdIndex()));
                result.add(new IoEventFd(s.offset(), (int) s.size(),
                        (s.flags() & KVM_IOEVENTFD_FLAG_DATAMATCH) != 0 ? OptionalLong.of(s.value()) : OptionalLong.empty(), fd));
            }
            return result;
        } catch (RuntimeException e) {
            result.forEach(x -> Libc.close(x.fd()));
            throw e;
        }
    }

    /** @return why the sub-region cannot be registered, or null when it can */
    static String problem(SubRegion s, long regionSize) {
        if (s.type() != vfio_user_h.VFIO_USER_IO_FD_TYPE_IOEVENTFD()) {
            return "type " + s.type() + " is not an ioeventfd";
        }
        if ((s.flags() & ~KVM_IOEVENTFD_FLAG_DATAMATCH) != 0) {
            return "flags 0x" + Integer.toHexString(s.flags()) + " other than KVM_IOEVENTFD_FLAG_DATAMATCH";
        }
        boolean datamatch = (s.flags() & KVM_IOEVENTFD_FLAG_DATAMATCH) != 0;
        try {
            if (s.size() > 8) {
                return "size " + s.size() + " is not 0, 1, 2, 4 or 8";
            }
            IoEventFds.check((int) s.size(), datamatch ? OptionalLong.of(s.value()) : OptionalLong.empty());
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        }
        if (datamatch && s.size() < 8 && s.value() >>> (8 * s.size()) != 0) {
            return "datamatch 0x" + Long.toHexString(s.value()) + " does not fit " + s.size() + " bytes";
        }
        if (s.offset() < 0 || s.offset() >= regionSize || Math.max(s.size(), 1) > regionSize - s.offset()) {
            return "it lies outside the region's " + regionSize + " bytes";
        }
        return null;
    }
}
