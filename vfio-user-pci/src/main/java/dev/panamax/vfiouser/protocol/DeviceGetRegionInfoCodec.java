package dev.panamax.vfiouser.protocol;

import dev.panamax.core.sys.Errno;
import io.netty.buffer.ByteBuf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * {@code VFIO_USER_DEVICE_GET_REGION_INFO} (spec, "VFIO_USER_DEVICE_GET_REGION_INFO"): request and
 * reply payload are {@code struct vfio_region_info} (linux/vfio.h), 32 bytes:
 * <pre>
 *   0 u32 argsz   4 u32 flags (VFIO_REGION_INFO_FLAG_*)   8 u32 index   12 u32 cap_offset
 *   16 u64 size (bytes)   24 u64 offset (for mmap of the region's fd)
 * </pre>
 * A reply with FLAG_CAPS continues with a chain of capabilities ("VFIO region capabilities"),
 * each starting with {@code struct vfio_info_cap_header} {@code {u16 id, u16 version, u32 next}};
 * {@code cap_offset} and {@code next} count from the start of the payload, {@code next} 0 ends it.
 * A reply with FLAG_MMAP carries the region's fd.
 */
public final class DeviceGetRegionInfoCodec {
    public static final int SIZE = 32;
    public static final int VFIO_REGION_INFO_FLAG_READ = 1 << 0;
    public static final int VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
    public static final int VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
    public static final int VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
    public static final int VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
    public static final int VFIO_REGION_INFO_CAP_TYPE = 2;
    public static final int OFFSET_ARGSZ = 0;
    public static final int OFFSET_FLAGS = 4;
    public static final int OFFSET_INDEX = 8;
    public static final int OFFSET_CAP_OFFSET = 12;
    public static final int OFFSET_SIZE = 16;
    public static final int OFFSET_OFFSET = 24;
    /** {@code sizeof(struct vfio_info_cap_header)}. */
    public static final int CAP_HEADER_SIZE = 8;
    /** {@code sizeof(struct vfio_region_sparse_mmap_area)}: u64 offset, u64 size. */
    public static final int SPARSE_AREA_SIZE = 16;
    /** Offset of {@code areas} in {@code struct vfio_region_info_cap_sparse_mmap} (after u32 nr_areas, u32 reserved). */
    public static final int SPARSE_AREAS_OFFSET = 16;
    /** {@code sizeof(struct vfio_region_info_cap_type)}: header, u32 type, u32 subtype. */
    public static final int CAP_TYPE_SIZE = 16;

    private DeviceGetRegionInfoCodec() {
    }

    /** @param argsz largest reply payload wanted (at least 32); @param index region index */
    public record Request(long argsz, long index) {
    }

    /** A region capability. */
    public sealed interface Capability permits SparseMmap, Type, Unknown {
    }

    /** One directly mappable span: {@code offset} is added to the region's mmap offset; sizes in bytes. */
    public record SparseArea(long offset, long size) {
    }

    /** VFIO_REGION_INFO_CAP_SPARSE_MMAP, version 1: only these areas of the region may be mmapped. */
    public record SparseMmap(List<SparseArea> areas) implements Capability {
        public SparseMmap {
            areas = List.copyOf(areas);
        }
    }

    /** VFIO_REGION_INFO_CAP_TYPE, version 1: a device-specific region type. */
    public record Type(long type, long subtype) implements Capability {
    }

    /** A capability this codec does not know, kept as its bytes after the 8-byte header. */
    public record Unknown(int id, int version, byte[] body) implements Capability {
        public Unknown {
            body = body.clone();
        }

        @Override
        public byte[] body() {
            return body.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Unknown u && u.id == id && u.version == version && Arrays.equals(u.body, body);
        }

        @Override
        public int hashCode() {
            return 31 * (31 * id + version) + Arrays.hashCode(body);
        }
    }

    /**
     * What a server tells about a region.
     *
     * @param flags        VFIO_REGION_INFO_FLAG_*; FLAG_CAPS is set by the encoder when there are capabilities
     * @param index        region index
     * @param size         bytes
     * @param offset       mmap offset in the region's fd
     * @param capabilities the capability chain, in order
     */
    public record RegionInfo(int flags, long index, long size, long offset, List<Capability> capabilities) {
        public RegionInfo {
            capabilities = List.copyOf(capabilities);
        }
    }

    /**
     * A decoded reply.
     *
     * @param argsz bytes of the full reply; larger than what arrived when the client's argsz was too small,
     *              in which case {@code info.capabilities()} is empty and the client should ask again
     */
    public record Reply(long argsz, RegionInfo info) {
    }

    public static void encode(Request r, ByteBuf out) {
        out.writeIntLE((int) r.argsz);
        out.writeZero(4);
        out.writeIntLE((int) r.index);
        out.writeZero(4 + 8 + 8);
    }

    /** @throws VfioUserProtocolException EINVAL for a payload other than 32 bytes, argsz below 32, or non-zero fields besides index */
    public static Request decodeRequest(ByteBuf in) {
        Payloads.exactly(in, SIZE, "DEVICE_GET_REGION_INFO request");
        long argsz = in.readUnsignedIntLE();
        Payloads.argszAtLeast(argsz, SIZE, "DEVICE_GET_REGION_INFO");
        Payloads.zero(in.readIntLE(), "DEVICE_GET_REGION_INFO request flags");
        long index = in.readUnsignedIntLE();
        Payloads.zero(in.readIntLE(), "DEVICE_GET_REGION_INFO request cap_offset");
        Payloads.zero(in.readLongLE(), "DEVICE_GET_REGION_INFO request size");
        Payloads.zero(in.readLongLE(), "DEVICE_GET_REGION_INFO request offset");
        return new Request(argsz, index);
    }

    /** @return bytes of the full reply for {@code info}: 32 plus its capabilities */
    public static int replySize(RegionInfo info) {
        int n = SIZE;
        for (Capability c : info.capabilities) {
            n += capSize(c);
        }
        return n;
    }

    /**
     * Writes the reply. When the full reply does not fit in {@code maxReplySize} (the request's
     * argsz), writes only the 32-byte struct, with argsz the size needed and cap_offset 0
     * (spec, "Message sizes").
     */
    public static void encodeReply(RegionInfo info, long maxReplySize, ByteBuf out) {
        int needed = replySize(info);
        boolean caps = !info.capabilities.isEmpty();
        boolean full = needed <= maxReplySize;
        out.writeIntLE(needed);
        out.writeIntLE(info.flags | (caps ? VFIO_REGION_INFO_FLAG_CAPS : 0));
        out.writeIntLE((int) info.index);
        out.writeIntLE(caps && full ? SIZE : 0);
        out.writeLongLE(info.size);
        out.writeLongLE(info.offset);
        if (!full) {
            return;
        }
        int at = SIZE;
        for (int i = 0; i < info.capabilities.size(); i++) {
            Capability c = info.capabilities.get(i);
            int size = capSize(c);
            int next = i + 1 < info.capabilities.size() ? at + size : 0;
            switch (c) {
                case SparseMmap s -> {
                    capHeader(out, VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, next);
                    out.writeIntLE(s.areas.size());
                    out.writeIntLE(0);
                    for (SparseArea a : s.areas) {
                        out.writeLongLE(a.offset);
                        out.writeLongLE(a.size);
                    }
                }
                case Type t -> {
                    capHeader(out, VFIO_REGION_INFO_CAP_TYPE, 1, next);
                    out.writeIntLE((int) t.type);
                    out.writeIntLE((int) t.subtype);
                }
                case Unknown u -> {
                    capHeader(out, u.id, u.version, next);
                    out.writeBytes(u.body);
                    out.writeZero(size - CAP_HEADER_SIZE - u.body.length);
                }
            }
            at += size;
        }
    }

    /**
     * Reads a reply and walks its capability chain.
     *
     * @throws VfioUserProtocolException EINVAL when truncated, when argsz disagrees with a full payload,
     *         or when a capability lies outside the payload, overlaps the struct, or the chain does not move forward
     */
    public static Reply decodeReply(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "DEVICE_GET_REGION_INFO reply");
        int payload = in.readableBytes();
        int base = in.readerIndex();
        long argsz = in.readUnsignedIntLE();
        int flags = in.readIntLE();
        long index = in.readUnsignedIntLE();
        long capOffset = in.readUnsignedIntLE();
        long size = in.readLongLE();
        long offset = in.readLongLE();
        List<Capability> caps = new ArrayList<>();
        if (payload == SIZE && argsz > SIZE) {
            // The client's argsz was too small: the capabilities were left out, argsz says how much to ask for.
            return new Reply(argsz, new RegionInfo(flags, index, size, offset, caps));
        }
        if (argsz != payload) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_GET_REGION_INFO reply argsz " + argsz + " differs from the payload size " + payload);
        }
        boolean hasCaps = (flags & VFIO_REGION_INFO_FLAG_CAPS) != 0;
        if (!hasCaps && (capOffset != 0 || payload != SIZE)) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO reply without FLAG_CAPS has cap_offset "
                    + capOffset + " and " + payload + " bytes");
        }
        long at = hasCaps ? capOffset : 0;
        while (at != 0) {
            if (at < SIZE || at + CAP_HEADER_SIZE > payload) {
                throw new VfioUserProtocolException(Errno.EINVAL,
                        "DEVICE_GET_REGION_INFO capability at offset " + at + " lies outside bytes 32.." + payload);
            }
            ByteBuf cap = in.slice(base + (int) at, payload - (int) at);
            int id = cap.readUnsignedShortLE();
            int version = cap.readUnsignedShortLE();
            long next = cap.readUnsignedIntLE();
            if (next != 0 && (next < at + CAP_HEADER_SIZE || next > payload)) {
                throw new VfioUserProtocolException(Errno.EINVAL,
                        "DEVICE_GET_REGION_INFO capability at " + at + " has next " + next + ", not after it within " + payload + " bytes");
            }
            int end = (int) (next != 0 ? next : payload);
            int bodyBytes = end - (int) at - CAP_HEADER_SIZE;
            caps.add(switch (id) {
                case VFIO_REGION_INFO_CAP_SPARSE_MMAP -> sparse(cap, bodyBytes);
                case VFIO_REGION_INFO_CAP_TYPE -> {
                    capBody(bodyBytes, CAP_TYPE_SIZE - CAP_HEADER_SIZE, "type");
                    yield new Type(cap.readUnsignedIntLE(), cap.readUnsignedIntLE());
                }
                default -> new Unknown(id, version, Payloads.bytes(cap, bodyBytes));
            });
            at = next;
        }
        in.readerIndex(base + payload);
        return new Reply(argsz, new RegionInfo(flags, index, size, offset, caps));
    }

    /**
     * Checks the fds that came with a reply: one exactly when the region has FLAG_MMAP ("When this
     * flag is set, the reply will include a file descriptor in its meta-data").
     *
     * @throws VfioUserProtocolException EINVAL otherwise
     */
    public static void checkFds(RegionInfo info, int fdCount) {
        int expected = (info.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0 ? 1 : 0;
        if (fdCount != expected) {
            throw new VfioUserProtocolException(Errno.EINVAL, "DEVICE_GET_REGION_INFO reply for region " + info.index
                    + " came with " + fdCount + " fds, its flags 0x" + Integer.toHexString(info.flags) + " need " + expected);
        }
    }

    private static SparseMmap sparse(ByteBuf cap, int bodyBytes) {
        capBody(bodyBytes, SPARSE_AREAS_OFFSET - CAP_HEADER_SIZE, "sparse mmap");
        long n = cap.readUnsignedIntLE();
        cap.readIntLE(); // reserved
        capBody(bodyBytes, SPARSE_AREAS_OFFSET - CAP_HEADER_SIZE + n * SPARSE_AREA_SIZE, "sparse mmap with " + n + " areas");
        List<SparseArea> areas = new ArrayList<>();
        for (long i = 0; i < n; i++) {
            areas.add(new SparseArea(cap.readLongLE(), cap.readLongLE()));
        }
        return new SparseMmap(areas);
    }

    private static void capBody(int have, long need, String what) {
        if (have < need) {
            throw new VfioUserProtocolException(Errno.EINVAL,
                    "DEVICE_GET_REGION_INFO " + what + " capability has " + have + " body bytes, needs " + need);
        }
    }

    private static void capHeader(ByteBuf out, int id, int version, int next) {
        out.writeShortLE(id);
        out.writeShortLE(version);
        out.writeIntLE(next);
    }

    private static int capSize(Capability c) {
        return switch (c) {
            case SparseMmap s -> SPARSE_AREAS_OFFSET + s.areas.size() * SPARSE_AREA_SIZE;
            case Type t -> CAP_TYPE_SIZE;
            case Unknown u -> CAP_HEADER_SIZE + ((u.body.length + 7) & ~7);
        };
    }
}
