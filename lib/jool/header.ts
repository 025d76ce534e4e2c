/**
 * Jool's own header (`struct joolnlhdr`, Jool's common/config.h), after the genlmsghdr of every
 * Jool message: magic "jool", the version (BIG endian), translator type, flags and instance name.
 *
 * @module
 */

/** Size of `struct joolnlhdr`. */
export const JOOLNL_HDRLEN = 28;
/** common/config.h: translator type NAT64 (joold only serves NAT64). */
export const XT_NAT64 = 2;
/** common/config.h: JOOLNLHDR_FLAGS_ERROR: the message is an error report. */
export const JOOLNLHDR_FLAGS_ERROR = 1;
/** common/config.h: JOOLNLHDR_FLAGS_M: more data follows (paged replies). */
export const JOOLNLHDR_FLAGS_M = 8;
/** common/config.h: INAME_MAX_SIZE (NUL included). */
export const INAME_MAX_SIZE = 16;

const MAGIC = [0x6a, 0x6f, 0x6f, 0x6c]; // "jool"

/** A decoded joolnlhdr. */
export interface JoolHeader {
  /** major<<24 | minor<<16 | revision<<8 | development, as a number. */
  readonly version: number;
  /** Translator type (2 = NAT64). */
  readonly xt: number;
  /** JOOLNLHDR_FLAGS_*. */
  readonly flags: number;
  /** Instance name. */
  readonly iname: string;
}

/**
 * Encodes a joolnlhdr.
 *
 * @param header version, xt, flags, instance name
 * @returns 28 bytes
 * @throws {RangeError} when the instance name is longer than 15 bytes
 * @example
 * ```ts
 * encodeJoolHeader({ version: 0x04010900, xt: 2, flags: 0, iname: "default" }).length; // 28
 * ```
 */
export function encodeJoolHeader(header: JoolHeader): Uint8Array<ArrayBuffer> {
  const name = new TextEncoder().encode(header.iname);
  if (name.length >= INAME_MAX_SIZE) {
    throw new RangeError(`instance name "${header.iname}" is longer than 15 bytes`);
  }
  const out = new Uint8Array(JOOLNL_HDRLEN);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, header.version >>> 0, false);
  out[8] = header.xt;
  out[9] = header.flags;
  out.set(name, 12);
  return out;
}

/**
 * Decodes a joolnlhdr.
 *
 * @param bytes at least 28 bytes
 * @returns the header
 * @throws {RangeError} when truncated or the magic is not "jool"
 */
export function decodeJoolHeader(bytes: Uint8Array): JoolHeader {
  if (bytes.length < JOOLNL_HDRLEN) {
    throw new RangeError(`truncated Jool header: ${bytes.length} of ${JOOLNL_HDRLEN} bytes`);
  }
  if (MAGIC.some((b, i) => bytes[i] !== b)) throw new RangeError("bad Jool header magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, JOOLNL_HDRLEN);
  const nameBytes = bytes.subarray(12, 12 + INAME_MAX_SIZE);
  const end = nameBytes.indexOf(0);
  return {
    version: view.getUint32(4, false),
    xt: bytes[8],
    flags: bytes[9],
    iname: new TextDecoder().decode(end < 0 ? nameBytes : nameBytes.subarray(0, end)),
  };
}
