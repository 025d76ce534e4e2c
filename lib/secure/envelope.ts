/**
 * The secure-sync envelope around an unchanged Jool session payload (docs/PROTOCOL.md, "Secure
 * sync", has every byte). All fields are network order (big-endian):
 *
 * ```text
 * offset size field
 *  0      3   magic "JSS" (0x4a 0x53 0x53)
 *  3      1   kind << 4 | version (1): kind 0 data, 1 NACK, 2 hello, 3 bulk done
 *  4      4   key id: which key of the key file sealed it (HKDF of the key, lib/secure/keyfile.ts)
 *  8      8   time: the sender's clock, ms since the Unix epoch
 * 16     16   sender: random, chosen by each daemon at start   \ together the 192-bit
 * 32      8   sequence: 1, 2, 3... per sender                  / XChaCha20 nonce
 * 40      n   the session payload, encrypted
 * 40+n   16   Poly1305 tag over bytes 0-39 (associated data) and the payload
 * ```
 *
 * The nonce is the sender and the sequence: a new sender is drawn at every start (so a restart
 * never reuses a nonce), two peers draw different senders (a collision needs 2^64 starts), and a
 * sender never reuses a sequence number. Pure functions over bytes: no sockets, no Deno APIs.
 *
 * @module
 */

import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import type { SyncKey } from "./keyfile.ts";

/** "JSS": no Jool payload starts with it (its first attribute would be 21322 bytes of type 339). */
export const MAGIC: Uint8Array = Uint8Array.of(0x4a, 0x53, 0x53);
/** The envelope version this module speaks (the low 4 bits of byte 3). */
export const VERSION = 1;

/**
 * What an envelope carries (the high 4 bits of byte 3, covered by the tag like every header byte):
 * a session payload, or one of the control messages of lib/secure/control.ts. Every kind draws
 * its sequence number from the sender's one counter, so the nonce rule holds for all of them.
 */
export const Kind = {
  /** An unchanged Jool session payload (byte 3 is `01`, as before kinds existed). */
  data: 0,
  /** A receiver asks a sender to resend a range of sequence numbers (or to resync). */
  nack: 1,
  /** A daemon says it is alive (every second) and, when starting, asks for the peers' tables. */
  hello: 2,
  /** A sender says that the bulk resync it made for one announcer is complete. */
  bulkDone: 3,
} as const;

/** One of {@linkcode Kind}'s values. */
export type Kind = typeof Kind[keyof typeof Kind];

const KINDS: ReadonlySet<number> = new Set(Object.values(Kind));
/** Bytes before the payload. */
export const HEADER_LENGTH = 40;
/** Bytes of the Poly1305 tag after the payload. */
export const TAG_LENGTH = 16;
/** What the envelope adds to a payload: lower the kernel's `ss-max-payload` by this much. */
export const OVERHEAD: number = HEADER_LENGTH + TAG_LENGTH;
/** Bytes of the sender identity. */
export const SENDER_LENGTH = 16;
/** The largest sequence number (and time) a header may carry: JS numbers are exact below it. */
export const MAX_FIELD: number = Number.MAX_SAFE_INTEGER;

/** The header of an envelope. */
export interface EnvelopeHeader {
  /** What it carries ({@linkcode Kind}; absent: data). */
  readonly kind?: Kind;
  /** The key id of the key that sealed it. */
  readonly keyId: number;
  /** The sender's clock, ms since the Unix epoch. */
  readonly time: number;
  /** The sender's identity: 16 random bytes chosen at its start. */
  readonly sender: Uint8Array;
  /** The sender's sequence number, from 1. */
  readonly sequence: number;
}

/**
 * Whether a datagram carries the envelope's magic (any version): how a daemon tells an envelope
 * from a plain Jool payload before anything else.
 *
 * @param datagram the datagram
 * @returns true when it starts with "JSS"
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isEnvelope } from "./envelope.ts";
 * assert.equal(isEnvelope(new TextEncoder().encode("JSS\x01")), true);
 * assert.equal(isEnvelope(Uint8Array.of(0x2c, 0x00, 0x01, 0x80)), false);
 * ```
 */
export function isEnvelope(datagram: Uint8Array): boolean {
  return datagram.length >= 3 && datagram[0] === MAGIC[0] && datagram[1] === MAGIC[1] &&
    datagram[2] === MAGIC[2];
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / 2 ** 32), false);
  view.setUint32(offset + 4, value >>> 0, false);
}

function getU64(view: DataView, offset: number): number {
  const high = view.getUint32(offset, false);
  // Above 2^53 a JS number is no longer exact: such a header is refused, never rounded.
  if (high >= 2 ** 21) return -1;
  return high * 2 ** 32 + view.getUint32(offset + 4, false);
}

/**
 * Writes a header into the first {@linkcode HEADER_LENGTH} bytes of `out`.
 *
 * @param header the fields
 * @param out at least {@linkcode HEADER_LENGTH} bytes
 * @throws {RangeError} for a field out of range or a short `out`
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeHeader, encodeHeader, HEADER_LENGTH, Kind } from "./envelope.ts";
 *
 * const header = { kind: Kind.nack, keyId: 1, time: 2, sender: new Uint8Array(16), sequence: 4 };
 * const bytes = new Uint8Array(HEADER_LENGTH + 16); // a header, an empty payload, a tag
 * encodeHeader(header, bytes);
 * assert.equal(bytes[3], 0x11); // kind 1, version 1
 * assert.deepEqual(decodeHeader(bytes), header);
 * ```
 */
export function encodeHeader(header: EnvelopeHeader, out: Uint8Array): void {
  if (out.length < HEADER_LENGTH) throw new RangeError(`a header needs ${HEADER_LENGTH} bytes`);
  if (!Number.isInteger(header.keyId) || header.keyId < 0 || header.keyId > 0xffffffff) {
    throw new RangeError(`key id out of range: ${header.keyId}`);
  }
  for (const [name, value] of [["time", header.time], ["sequence", header.sequence]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
      throw new RangeError(`${name} out of range: ${value}`);
    }
  }
  if (header.sender.length !== SENDER_LENGTH) {
    throw new RangeError(`a sender is ${SENDER_LENGTH} bytes, got ${header.sender.length}`);
  }
  const kind = header.kind ?? Kind.data;
  if (!KINDS.has(kind)) throw new RangeError(`unknown envelope kind: ${kind}`);
  const view = new DataView(out.buffer, out.byteOffset, HEADER_LENGTH);
  out.set(MAGIC, 0);
  out[3] = (kind << 4) | VERSION;
  view.setUint32(4, header.keyId, false);
  setU64(view, 8, header.time);
  out.set(header.sender, 16);
  setU64(view, 32, header.sequence);
}

/**
 * Reads the header of an envelope (it does not verify anything: see {@linkcode openEnvelope}).
 *
 * @param datagram the datagram
 * @returns the header (`sender` is a view into `datagram`)
 * @throws {RangeError} when it is not an envelope of this version, of a known kind, is shorter
 *   than a header and a tag, or carries a time or sequence beyond 2^53
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeHeader } from "./envelope.ts";
 * assert.throws(() => decodeHeader(new TextEncoder().encode("JSS")), RangeError);
 * ```
 */
export function decodeHeader(datagram: Uint8Array): EnvelopeHeader {
  if (!isEnvelope(datagram)) throw new RangeError("not a secure-sync envelope (no JSS magic)");
  if (datagram.length < 4 || (datagram[3] & 0x0f) !== VERSION) {
    throw new RangeError(
      `envelope version ${
        datagram.length < 4 ? "(missing)" : datagram[3] & 0x0f
      }: this joold speaks version ${VERSION}`,
    );
  }
  const kind = datagram[3] >> 4;
  if (!KINDS.has(kind)) {
    throw new RangeError(`envelope kind ${kind}: this joold knows kinds 0-${KINDS.size - 1}`);
  }
  if (datagram.length < OVERHEAD) {
    throw new RangeError(
      `a ${datagram.length}-byte envelope is shorter than a header and a tag (${OVERHEAD} bytes)`,
    );
  }
  const view = new DataView(datagram.buffer, datagram.byteOffset, HEADER_LENGTH);
  const time = getU64(view, 8);
  const sequence = getU64(view, 32);
  if (time < 0 || sequence < 0) throw new RangeError("envelope time or sequence beyond 2^53");
  return {
    kind: kind as Kind,
    keyId: view.getUint32(4, false),
    time,
    sender: datagram.subarray(16, 32),
    sequence,
  };
}

/**
 * Seals a payload: header, encrypted payload, tag.
 *
 * @param key the key to seal with (its id goes into the header)
 * @param header the kind (default data), time, sender and sequence (`keyId` is taken from `key`)
 * @param payload the Jool session payload
 * @returns the envelope, {@linkcode OVERHEAD} bytes longer than `payload`
 * @throws {RangeError} for a header field out of range
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openEnvelope, sealEnvelope } from "./envelope.ts";
 * import { parseKeyFile } from "./keyfile.ts";
 *
 * const [key] = parseKeyFile("42".repeat(32), "sync.key");
 * const header = { time: 1, sender: new Uint8Array(16), sequence: 1 };
 * const envelope = sealEnvelope(key, header, Uint8Array.of(1, 2, 3));
 * assert.deepEqual(openEnvelope(key, envelope), Uint8Array.of(1, 2, 3));
 * envelope[41] ^= 1;
 * assert.equal(openEnvelope(key, envelope), null);
 * ```
 */
export function sealEnvelope(
  key: SyncKey,
  header: Omit<EnvelopeHeader, "keyId">,
  payload: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(OVERHEAD + payload.length);
  encodeHeader({ ...header, keyId: key.id }, out);
  const aad = out.subarray(0, HEADER_LENGTH);
  const sealed = xchacha20poly1305(key.aeadKey(), out.subarray(16, HEADER_LENGTH), aad)
    .encrypt(payload);
  out.set(sealed, HEADER_LENGTH);
  return out;
}

/**
 * Verifies and decrypts an envelope whose header was decoded (same version, length checked).
 *
 * @param key the key its key id names
 * @param datagram the whole envelope
 * @returns the payload (a new array), or null when the tag does not verify (forged, corrupt,
 *   truncated, or sealed under another key with the same id)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openEnvelope } from "./envelope.ts";
 * import { parseKeyFile } from "./keyfile.ts";
 *
 * const [key] = parseKeyFile("42".repeat(32), "sync.key");
 * assert.equal(openEnvelope(key, new Uint8Array(56)), null);
 * ```
 */
export function openEnvelope(key: SyncKey, datagram: Uint8Array): Uint8Array | null {
  if (datagram.length < OVERHEAD) return null;
  try {
    return xchacha20poly1305(
      key.aeadKey(),
      datagram.subarray(16, HEADER_LENGTH),
      datagram.subarray(0, HEADER_LENGTH),
    ).decrypt(datagram.subarray(HEADER_LENGTH));
  } catch {
    return null;
  }
}
