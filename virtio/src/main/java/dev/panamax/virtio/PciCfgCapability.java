package dev.panamax.virtio;

import dev.panamax.pci.PciConfigSpace;
import dev.panamax.pci.PciFunction;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.function.IntToLongFunction;

/**
 * struct virtio_pci_cfg_cap (virtio 1.2, 4.1.4 "PCI configuration access capability"): a virtio_pci_cap whose
 * bar, offset and length the driver writes, then le32 pci_cfg_data: reading or writing it reads or writes
 * {@code length} (1, 2, 4) bytes of that BAR at that offset, a way to the BARs through configuration space
 * alone ("The device MUST present at least one VIRTIO_PCI_CAP_PCI_CFG capability").
 *
 * <pre>
 * +0 cap_vndr 0x09  +1 cap_next  +2 cap_len 20  +3 cfg_type 5  +4 bar (RW)  +5 id  +6 padding[2]
 * +8 le32 offset (RW)  +12 le32 length (RW)  +16 u8 pci_cfg_data[4] (RW)
 * </pre>
 * Its accesses run as pci-bus config hooks ({@link PciFunction#addConfigReadHook}, {@link PciFunction#addConfigWriteHook})
 * with the function's lock held.
 */
final class PciCfgCapability {
    private static final Logger LOG = LoggerFactory.getLogger(PciCfgCapability.class);

    /** A BAR access: bar index, byte offset in it, the bytes. */
    interface BarAccess {
        void access(int bar, int offset, byte[] data);
    }

    private final PciConfigSpace config;
    private final IntToLongFunction barSize;
    private final int at;

    /**
     * Adds the capability to {@code function}'s config space.
     *
     * @param read    reads BAR bytes
     * @param write   writes BAR bytes
     * @param barSize the size of a BAR in bytes, 0 for one the device does not have
     */
    PciCfgCapability(PciFunction function, BarAccess read, BarAccess write, IntToLongFunction barSize) {
        this.config = function.config();
        this.barSize = barSize;
        byte[] body = new byte[18];
        body[0] = 20;
        body[1] = VirtioPciTransport.VIRTIO_PCI_CAP_PCI_CFG;
        at = config.addCapability(PciConfigSpace.CAP_ID_VNDR, body);
        config.setWritable(at + 4, 1, 0xFF);              // bar
        config.setWritable(at + 8, 4, 0xFFFF_FFFF);       // offset
        config.setWritable(at + 12, 4, 0xFFFF_FFFF);      // length
        config.setWritable(at + 16, 4, 0xFFFF_FFFF);      // pci_cfg_data
        function.addConfigReadHook(at + 16, 4, () -> {
            byte[] data = access();
            if (data != null) {
                read.access(config.get8(at + 4), config.get32(at + 8), data);
                int value = 0;
                for (int i = 0; i < data.length; i++) {
                    value |= (data[i] & 0xFF) << (8 * i);
                }
                int keep = data.length == 4 ? 0 : -1 << (8 * data.length);
                config.set32(at + 16, config.get32(at + 16) & keep | value);
            }
        });
        function.addConfigWriteHook(at + 16, 4, () -> {
            byte[] data = access();
            if (data != null) {
                int value = config.get32(at + 16);
                for (int i = 0; i < data.length; i++) {
                    data[i] = (byte) (value >>> (8 * i));
                }
                write.access(config.get8(at + 4), config.get32(at + 8), data);
            }
        });
    }

    /** @return the capability's offset in config space */
    int offset() {
        return at;
    }

    /**
     * The access the capability asks for now: a buffer of cap.length bytes, or null when length is not 1, 2
     * or 4, offset is not a multiple of it, or the range is not in one of the device's BARs.
     */
    private byte[] access() {
        int bar = config.get8(at + 4);
        long offset = Integer.toUnsignedLong(config.get32(at + 8));
        long length = Integer.toUnsignedLong(config.get32(at + 12));
        if ((length != 1 && length != 2 && length != 4) || offset % length != 0 || offset + length > barSize.applyAsLong(bar)) {
            LOG.debug("virtio: VIRTIO_PCI_CAP_PCI_CFG access of {} bytes at BAR {} offset 0x{} ignored", length, bar, Long.toHexString(offset));
            return null;
        }
        return new byte[(int) length];
    }
}
