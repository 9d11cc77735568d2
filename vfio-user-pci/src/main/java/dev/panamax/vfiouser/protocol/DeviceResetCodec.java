package dev.panamax.vfiouser.protocol;

import io.netty.buffer.ByteBuf;

/** {@code VFIO_USER_DEVICE_RESET} (spec, "VFIO_USER_DEVICE_RESET"): "Neither the request or reply have a payload." */
public final class DeviceResetCodec {
    private DeviceResetCodec() {
    }

    /** @throws VfioUserProtocolException EINVAL when the request or reply has any payload */
    public static void decode(ByteBuf in) {
        Payloads.exactly(in, 0, "DEVICE_RESET");
    }

    /** The empty payload of replies with none: DMA_MAP, DEVICE_SET_IRQS, DEVICE_RESET. @throws VfioUserProtocolException EINVAL otherwise */
    public static void decodeEmpty(ByteBuf in, VfioUserCommand command) {
        Payloads.exactly(in, 0, command + " reply");
    }
}
