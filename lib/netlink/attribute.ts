/**
 * Netlink attributes (`struct nlattr`, linux/netlink.h): a 4-byte header in HOST order (length
 * including the header, type) and a payload padded to 4 bytes. Decoders never trust a length.
 *
 * @module
 */

/** linux/netlink.h: the attribute carries nested attributes. */
export const NLA_F_NESTED = 0x8000;
/** linux/netlink.h: the attribute's payload is in network byte order (a flag of the type). */
export const NLA_F_NET_BYTEORDER = 0x4000;
/** linux/netlink.h: mask that strips NLA_F_NESTED and NLA_F_NET_BYTEORDER (0x4000) from the type. */
export const NLA_TYPE_MASK = 0x3fff;
/** Size of `struct nlattr`. */
export const NLA_HDRLEN = 4;

/** Rounds up to the netlink alignment (4). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One decoded attribute. `payload` is a view into the decoded buffer. */
export interface Attribute {
  /** The type without NLA_F_NESTED / NLA_F_NET_BYTEORDER. */
  readonly type: number;
  /** NLA_F_NESTED was set. */
  readonly nested: boolean;
  /** The payload (without header or padding): a view, valid as long as the buffer. */
  readonly payload: Uint8Array;
}

/**
 * Walks a run of attributes in `b[from, to)` without making an object per attribute (the
 * receive path's session decoders), with the checks and messages of {@linkcode parseAttributes}
 * (offsets relative to `from`): `each(type, payloadStart, payloadLength, nested)` per attribute,
 * the type without its flags, the payload's start an index into `b`.
 *
 * @param b the buffer
 * @param from where the run starts
 * @param to where it ends
 * @param each called per attribute, in order
 * @throws {RangeError} when a header is truncated or a length points outside the run
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeAttribute, walkAttributes } from "./attribute.ts";
 *
 * const seen: number[][] = [];
 * walkAttributes(encodeAttribute(2, Uint8Array.of(1)), 0, 8, (t, s, l) => seen.push([t, s, l]));
 * assert.deepEqual(seen, [[2, 4, 1]]);
 * ```
 */
export function walkAttributes(
  b: Uint8Array,
  from: number,
  to: number,
  each: (type: number, start: number, length: number, nested: boolean) => void,
): void {
  let offset = from;
  while (offset < to) {
    if (to - offset < NLA_HDRLEN) {
      throw new RangeError(
        `truncated attribute header at offset ${offset - from}: ${to - offset} bytes left`,
      );
    }
    const length = b[offset] | (b[offset + 1] << 8); // host order (little endian)
    const rawType = b[offset + 2] | (b[offset + 3] << 8);
    if (length < NLA_HDRLEN) {
      throw new RangeError(
        `attribute at offset ${offset - from} has an impossible length ${length}`,
      );
    }
    if (offset + length > to) {
      throw new RangeError(
        `attribute at offset ${offset - from} (length ${length}) overflows its parent (${
          to - from
        } bytes)`,
      );
    }
    each(
      rawType & NLA_TYPE_MASK,
      offset + NLA_HDRLEN,
      length - NLA_HDRLEN,
      (rawType & NLA_F_NESTED) !== 0,
    );
    offset += align4(length);
  }
}

/**
 * Decodes a run of attributes.
 *
 * @param bytes the attributes, back to back
 * @returns the attributes in order
 * @throws {RangeError} when a header is truncated or a length points outside `bytes`
 * @example
 * ```ts
 * parseAttributes(encodeAttribute(2, Uint8Array.of(1)))[0].type; // 2
 * ```
 */
export function parseAttributes(bytes: Uint8Array): Attribute[] {
  const out: Attribute[] = [];
  walkAttributes(bytes, 0, bytes.length, (type, start, length, nested) => {
    out.push({ type, nested, payload: bytes.subarray(start, start + length) });
  });
  return out;
}

/**
 * Encodes one attribute (header, payload, zero padding).
 *
 * @param type the type, flags included (e.g. `7 | NLA_F_NESTED`)
 * @param payload the payload
 * @returns the bytes
 * @throws {RangeError} when the payload does not fit a 16-bit length
 * @example
 * ```ts
 * encodeAttribute(1, new Uint8Array(4)).length; // 8
 * ```
 */
export function encodeAttribute(type: number, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const length = NLA_HDRLEN + payload.length;
  if (length > 0xffff) {
    throw new RangeError(`attribute payload of ${payload.length} bytes exceeds 65531`);
  }
  const out = new Uint8Array(align4(length));
  const view = new DataView(out.buffer);
  view.setUint16(0, length, true);
  view.setUint16(2, type, true);
  out.set(payload, NLA_HDRLEN);
  return out;
}

/**
 * Concatenates byte arrays.
 *
 * @param parts the arrays
 * @returns one array
 */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Encodes a NUL-terminated string attribute.
 *
 * @param type the type
 * @param value the string
 * @returns the bytes
 */
export function stringAttribute(type: number, value: string): Uint8Array<ArrayBuffer> {
  const text = new TextEncoder().encode(value);
  return encodeAttribute(type, concat(text, Uint8Array.of(0)));
}

/**
 * Encodes a u8 attribute.
 *
 * @param type the type
 * @param value the byte
 * @returns the bytes
 */
export function u8Attribute(type: number, value: number): Uint8Array<ArrayBuffer> {
  return encodeAttribute(type, Uint8Array.of(value));
}

/**
 * Reads a u16 payload in host order.
 *
 * @param a the attribute
 * @returns the value
 * @throws {RangeError} when the payload is shorter than 2 bytes
 */
export function readU16(a: Attribute): number {
  if (a.payload.length < 2) throw new RangeError(`attribute ${a.type}: u16 payload too short`);
  return new DataView(a.payload.buffer, a.payload.byteOffset, 2).getUint16(0, true);
}

/**
 * Reads a u32 payload in host order.
 *
 * @param a the attribute
 * @returns the value
 * @throws {RangeError} when the payload is shorter than 4 bytes
 */
export function readU32(a: Attribute): number {
  if (a.payload.length < 4) throw new RangeError(`attribute ${a.type}: u32 payload too short`);
  return new DataView(a.payload.buffer, a.payload.byteOffset, 4).getUint32(0, true);
}

/**
 * Reads a string payload (up to the first NUL).
 *
 * @param a the attribute
 * @returns the string
 */
export function readString(a: Attribute): string {
  const end = a.payload.indexOf(0);
  return new TextDecoder().decode(end < 0 ? a.payload : a.payload.subarray(0, end));
}
