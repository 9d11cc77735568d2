package dev.panamax.vfiouser.protocol;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.panamax.core.sys.Errno;
import dev.panamax.vfiouser.bindings.vfio_user_version;
import io.netty.buffer.ByteBuf;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

/**
 * {@code VFIO_USER_VERSION} (spec, "VFIO_USER_VERSION"): the first message of a connection, the same
 * format both ways: {@code struct vfio_user_version} (u16 major, u16 minor; the {@code dev.panamax.vfiouser.bindings}
 * binding), then the version data, optional UTF-8 JSON, NUL-terminated, in {@code data[]}.
 * The JSON is {@code {"capabilities": {...}}} with the members of {@link Capabilities}, read and written by Jackson.
 */
public final class VersionCodec {
    /** {@code sizeof(struct vfio_user_version)}: 4, the payload without version data. */
    public static final int SIZE = (int) vfio_user_version.sizeof();
    /** The version Panamax speaks: QEMU's client proposes 0.0 as well. */
    public static final int MAJOR = 0;
    public static final int MINOR = 0;
    /** Defaults when a capability is absent (spec, "VFIO_USER_VERSION", Capabilities). */
    public static final int DEFAULT_MAX_MSG_FDS = 1;
    public static final long DEFAULT_MAX_DATA_XFER_SIZE = 1 << 20;
    /**
     * The smallest max_data_xfer_size a peer may announce: one 4 KiB page. The spec gives no lower
     * bound, but 0 makes every chunked transfer impossible and tiny values make one page take
     * thousands of round trips; libvfio-user and QEMU both default to 1 MiB.
     */
    public static final long MIN_MAX_DATA_XFER_SIZE = 4096;
    public static final long DEFAULT_PGSIZES = 4096;
    public static final int DEFAULT_MAX_DMA_MAPS = 65535;
    public static final long DEFAULT_MAX_BITMAP_SIZE = 256L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private VersionCodec() {
    }

    /**
     * Migration parameters.
     *
     * @param pgsize        page size of the dirty page bitmap, bytes
     * @param maxBitmapSize bytes, or null for the default of 256 MiB
     */
    public record Migration(long pgsize, Long maxBitmapSize) {
        public long effectiveMaxBitmapSize() {
            return maxBitmapSize != null ? maxBitmapSize : DEFAULT_MAX_BITMAP_SIZE;
        }
    }

    /**
     * The capabilities object; every member may be absent (null), then the default applies.
     *
     * @param maxMsgFds       most fds the sender can receive in one message
     * @param maxDataXferSize most bytes in one REGION/DMA READ/WRITE
     * @param pgsizes         DMA map page sizes or'ed together, bytes
     * @param maxDmaMaps      most DMA windows at once
     * @param migration       null: migration not supported
     * @param writeMultiple   REGION_WRITE_MULTI supported when true
     */
    public record Capabilities(Integer maxMsgFds, Long maxDataXferSize, Long pgsizes, Integer maxDmaMaps,
                               Migration migration, Boolean writeMultiple) {
        public static final Capabilities NONE = new Capabilities(null, null, null, null, null, null);

        public int effectiveMaxMsgFds() {
            return maxMsgFds != null ? maxMsgFds : DEFAULT_MAX_MSG_FDS;
        }

        public long effectiveMaxDataXferSize() {
            return maxDataXferSize != null ? maxDataXferSize : DEFAULT_MAX_DATA_XFER_SIZE;
        }

        public long effectivePgsizes() {
            return pgsizes != null ? pgsizes : DEFAULT_PGSIZES;
        }

        public int effectiveMaxDmaMaps() {
            return maxDmaMaps != null ? maxDmaMaps : DEFAULT_MAX_DMA_MAPS;
        }

        public boolean effectiveWriteMultiple() {
            return writeMultiple != null && writeMultiple;
        }
    }

    /**
     * @param major        protocol major version
     * @param minor        protocol minor version
     * @param capabilities null: no version data at all
     */
    public record Version(int major, int minor, Capabilities capabilities) {
    }

    public static void encode(Version v, ByteBuf out) {
        MemorySegment s = Payloads.append(out, SIZE);
        vfio_user_version.major(s, (short) v.major);
        vfio_user_version.minor(s, (short) v.minor);
        if (v.capabilities == null) {
            return;
        }
        ObjectNode root = JSON.createObjectNode();
        ObjectNode caps = root.putObject("capabilities");
        Capabilities c = v.capabilities;
        if (c.maxMsgFds != null) caps.put("max_msg_fds", c.maxMsgFds);
        if (c.maxDataXferSize != null) caps.put("max_data_xfer_size", c.maxDataXferSize);
        if (c.pgsizes != null) caps.put("pgsizes", c.pgsizes);
        if (c.maxDmaMaps != null) caps.put("max_dma_maps", c.maxDmaMaps);
        if (c.migration != null) {
            ObjectNode m = caps.putObject("migration");
            m.put("pgsize", c.migration.pgsize);
            if (c.migration.maxBitmapSize != null) m.put("max_bitmap_size", c.migration.maxBitmapSize);
        }
        if (c.writeMultiple != null) caps.put("write_multiple", c.writeMultiple);
        out.writeBytes(root.toString().getBytes(StandardCharsets.UTF_8));
        out.writeByte(0); // "variable (including terminating NUL)"
    }

    /**
     * @throws VfioUserProtocolException EINVAL when shorter than 4 bytes, the version data is not
     *         NUL-terminated, not a JSON object, or a capability has the wrong type or a negative value
     */
    public static Version decode(ByteBuf in) {
        Payloads.atLeast(in, SIZE, "VERSION");
        MemorySegment s = Payloads.view(in, in.readerIndex(), SIZE);
        int major = Short.toUnsignedInt(vfio_user_version.major(s));
        int minor = Short.toUnsignedInt(vfio_user_version.minor(s));
        in.skipBytes(SIZE);
        if (!in.isReadable()) {
            return new Version(major, minor, null);
        }
        byte[] data = Payloads.bytes(in, in.readableBytes());
        if (data[data.length - 1] != 0) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION data of " + data.length + " bytes is not NUL-terminated");
        }
        String text = new String(data, 0, data.length - 1, StandardCharsets.UTF_8);
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION data is not JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION data is not a JSON object: " + text);
        }
        JsonNode caps = root.get("capabilities");
        if (caps == null) {
            return new Version(major, minor, Capabilities.NONE);
        }
        if (!caps.isObject()) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capabilities is not an object: " + caps);
        }
        Migration migration = null;
        JsonNode m = caps.get("migration");
        if (m != null) {
            if (!m.isObject()) {
                throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capability migration is not an object: " + m);
            }
            Long pgsize = number(m, "pgsize", Long.MAX_VALUE);
            if (pgsize == null) {
                throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capability migration lacks pgsize");
            }
            migration = new Migration(pgsize, number(m, "max_bitmap_size", Long.MAX_VALUE));
        }
        Boolean writeMultiple = null;
        JsonNode w = caps.get("write_multiple");
        if (w != null) {
            if (!w.isBoolean()) {
                throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capability write_multiple is not a boolean: " + w);
            }
            writeMultiple = w.booleanValue();
        }
        Long maxFds = number(caps, "max_msg_fds", Integer.MAX_VALUE);
        Long maxMaps = number(caps, "max_dma_maps", Integer.MAX_VALUE);
        return new Version(major, minor, new Capabilities(
                maxFds == null ? null : maxFds.intValue(),
                number(caps, "max_data_xfer_size", Long.MAX_VALUE),
                number(caps, "pgsizes", Long.MAX_VALUE),
                maxMaps == null ? null : maxMaps.intValue(),
                migration, writeMultiple));
    }

    /**
     * Checks a peer's capabilities for values no transfer can work with: a max_data_xfer_size below
     * {@link #MIN_MAX_DATA_XFER_SIZE} ("the maximum amount of data that can be transferred in one message",
     * spec, "VFIO_USER_VERSION", Capabilities: with 0, a DMA or region transfer would be cut into
     * messages of 0 bytes forever). An absent capability takes its default and passes.
     *
     * @throws VfioUserProtocolException EINVAL naming the capability
     */
    public static void checkLimits(Capabilities c) {
        if (c.maxDataXferSize != null && c.maxDataXferSize < MIN_MAX_DATA_XFER_SIZE) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capability max_data_xfer_size " + c.maxDataXferSize
                    + " is below the minimum of " + MIN_MAX_DATA_XFER_SIZE + " bytes");
        }
    }

    private static Long number(JsonNode parent, String name, long max) {
        JsonNode n = parent.get(name);
        if (n == null) {
            return null;
        }
        if (!n.isIntegralNumber() || !n.canConvertToLong() || n.longValue() < 0 || n.longValue() > max) {
            throw new VfioUserProtocolException(Errno.EINVAL, "VERSION capability " + name + " is not a number in 0.." + max + ": " + n);
        }
        return n.longValue();
    }
}
