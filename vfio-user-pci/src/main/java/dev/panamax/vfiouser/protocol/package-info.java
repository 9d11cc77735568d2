/**
 * The vfio-user wire format (spec: "vfio-user Protocol Specification", sections "Header" and
 * "Commands"): the 16-byte {@link dev.panamax.vfiouser.protocol.VfioUserHeader}, the command
 * numbers, and one codec per command family, each with its requests and replies as records.
 * Everything is little-endian (the spec says host endianness; Panamax runs on x86-64) and written
 * with netty's {@code ByteBuf} {@code ...LE} methods. Decoders check every size, argsz and flag
 * and throw {@link dev.panamax.vfiouser.protocol.VfioUserProtocolException} with the errno a
 * server should answer.
 */
package dev.panamax.vfiouser.protocol;
