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
 * XChaCha20-Poly1305 is computed as its draft (draft-irtf-cfrg-xchacha) defines it: HChaCha20 of
 * the key and the nonce's first 16 bytes (here: the sender) gives a subkey, then the IETF
 * ChaCha20-Poly1305 runs under that subkey with the nonce `00000000 || sequence`. The subkey is
 * the same for every envelope of one sender under one key, so it is derived once per (key,
 * sender) and kept (a few senders per key; a sender is kept only once one of its envelopes
 * verified), and the per-envelope work is a native ChaCha20-Poly1305, synchronous: OpenSSL's
 * libcrypto through FFI (ffi/libcrypto.ts) when `--allow-ffi` grants it, else the runtime's
 * `node:crypto` (3x faster than the whole XChaCha20-Poly1305 in JavaScript; libcrypto another
 * 1.5-2x, BENCHMARKS.md, "Secure sync"). Either is loaded only by a daemon with a key file
 * ({@linkcode loadNativeCipher}: `node:crypto` costs 30-60 ms on a host and seconds under the
 * lab's emulation, at every start); until then the whole XChaCha20-Poly1305 runs in JavaScript
 * (`@noble/ciphers`). The bytes are the same; tests/secure/envelope_test.ts checks them against
 * the known-answer vectors and noble's, with each implementation.
 *
 * @module
 */

import { hchacha, xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { LibcryptoChaCha } from "../../ffi/libcrypto.ts";
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

/** Big-endian, into a byte array (no DataView: this runs for every envelope). */
function putU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

function putU64(out: Uint8Array, at: number, value: number): void {
  putU32(out, at, Math.floor(value / 2 ** 32));
  putU32(out, at + 4, value >>> 0);
}

function checkField(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_FIELD) {
    throw new RangeError(`${name} out of range: ${value}`);
  }
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
  writeHeader(out, header.kind ?? Kind.data, header.keyId, header);
}

/**
 * {@linkcode encodeHeader} with the key id apart (sealing: no header object built per call).
 *
 * @param out at least {@linkcode HEADER_LENGTH} bytes
 * @param kind the envelope's kind
 * @param keyId the sealing key's id
 * @param fields the time, sender and sequence
 * @throws {RangeError} for a field out of range (before anything is written)
 */
export function writeHeader(
  out: Uint8Array,
  kind: number,
  keyId: number,
  { time, sender, sequence }: Omit<EnvelopeHeader, "keyId" | "kind">,
): void {
  if (out.length < HEADER_LENGTH) throw new RangeError(`a header needs ${HEADER_LENGTH} bytes`);
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) {
    throw new RangeError(`key id out of range: ${keyId}`);
  }
  checkField("time", time);
  checkField("sequence", sequence);
  if (sender.length !== SENDER_LENGTH) {
    throw new RangeError(`a sender is ${SENDER_LENGTH} bytes, got ${sender.length}`);
  }
  if (!KINDS.has(kind)) throw new RangeError(`unknown envelope kind: ${kind}`);
  out[0] = MAGIC[0];
  out[1] = MAGIC[1];
  out[2] = MAGIC[2];
  out[3] = (kind << 4) | VERSION;
  putU32(out, 4, keyId);
  putU64(out, 8, time);
  out.set(sender, 16);
  putU64(out, 32, sequence);
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
  sealEnvelopeInto(out, key, header, payload);
  return out;
}

/**
 * {@linkcode sealEnvelope} into bytes the caller has (the secure channel's resend ring).
 *
 * @param out exactly {@linkcode OVERHEAD} bytes longer than `payload`
 * @param key the key to seal with
 * @param header the kind, time, sender and sequence
 * @param payload the Jool session payload
 * @throws {RangeError} for a header field out of range, or `out` of another length (before
 *   anything is written)
 */
export function sealEnvelopeInto(
  out: Uint8Array,
  key: SyncKey,
  header: Omit<EnvelopeHeader, "keyId">,
  payload: Uint8Array,
): void {
  if (out.length !== OVERHEAD + payload.length) {
    throw new RangeError(
      `a ${payload.length}-byte payload seals into ${
        OVERHEAD + payload.length
      } bytes, not ${out.length}`,
    );
  }
  writeHeader(out, header.kind ?? Kind.data, key.id, header);
  if (using === "libcrypto") {
    const aad = out.subarray(0, HEADER_LENGTH);
    const sealed = out.subarray(HEADER_LENGTH);
    libcrypto!.seal(subkey(key, header.sender), ietfNonce(out), aad, payload, sealed);
    return;
  }
  if (using === "noble") {
    const aad = out.subarray(0, HEADER_LENGTH);
    out.set(
      xchacha20poly1305(key.aeadKey(), out.subarray(16, HEADER_LENGTH), aad).encrypt(payload),
      HEADER_LENGTH,
    );
    return;
  }
  const cipher = native!.createCipheriv(
    CIPHER,
    subkey(key, header.sender),
    ietfNonce(out),
    AUTH_TAG,
  );
  cipher.setAAD(out.subarray(0, HEADER_LENGTH), { plaintextLength: payload.length });
  out.set(cipher.update(payload), HEADER_LENGTH);
  cipher.final();
  out.set(cipher.getAuthTag(), HEADER_LENGTH + payload.length);
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
  if (using === "noble") {
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
  const sender = datagram.subarray(16, 32);
  const known = cachedSubkey(key, sender);
  const derived = known ?? deriveSubkey(key, sender);
  const tagAt = datagram.length - TAG_LENGTH;
  if (using === "libcrypto") {
    const plain = new Uint8Array(tagAt - HEADER_LENGTH);
    const aad = datagram.subarray(0, HEADER_LENGTH);
    const sealed = datagram.subarray(HEADER_LENGTH);
    if (!libcrypto!.open(derived, ietfNonce(datagram), aad, sealed, plain)) return null;
    if (known === undefined) keepSubkey(key, sender, derived);
    return plain;
  }
  try {
    const decipher = native!.createDecipheriv(
      CIPHER,
      derived,
      ietfNonce(datagram),
      AUTH_TAG,
    );
    decipher.setAAD(datagram.subarray(0, HEADER_LENGTH), {
      plaintextLength: tagAt - HEADER_LENGTH,
    });
    decipher.setAuthTag(datagram.subarray(tagAt));
    const plain = decipher.update(datagram.subarray(HEADER_LENGTH, tagAt));
    decipher.final(); // throws when the tag does not verify: `plain` is then never returned
    if (known === undefined) keepSubkey(key, sender, derived);
    return new Uint8Array(plain.buffer, plain.byteOffset, plain.length);
  } catch {
    return null;
  }
}

/** The runtime's cipher functions, once {@linkcode loadNativeCipher} loaded them. */
let native: Pick<typeof import("node:crypto"), "createCipheriv" | "createDecipheriv"> | null = null;
/** libcrypto's cipher, once {@linkcode loadNativeCipher} opened it. */
let libcrypto: LibcryptoChaCha | null = null;

/** What computes the per-envelope ChaCha20-Poly1305 (the bytes are the same with each). */
export type CipherImplementation = "noble" | "node:crypto" | "libcrypto";
let using: CipherImplementation = "noble";

/**
 * Loads a native ChaCha20-Poly1305 for {@linkcode sealEnvelope} and {@linkcode openEnvelope}:
 * libcrypto when `--allow-ffi` grants one of ffi/libcrypto.ts's paths and it opens (and answers
 * RFC 8439's test vector), else the runtime's `node:crypto`. The bytes are the same as before
 * (noble's XChaCha20-Poly1305).
 *
 * @param prefer "node:crypto" to skip libcrypto (the tests and benchmarks compare them)
 * @returns which was loaded, for the start-up log (with libcrypto's path, or why it is not used)
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadNativeCipher, openEnvelope, sealEnvelope } from "./envelope.ts";
 * import { parseKeyFile } from "./keyfile.ts";
 *
 * const [key] = parseKeyFile("42".repeat(32), "sync.key");
 * const header = { time: 1, sender: new Uint8Array(16), sequence: 1 };
 * const before = sealEnvelope(key, header, Uint8Array.of(1, 2, 3));
 * await loadNativeCipher();
 * assert.deepEqual(sealEnvelope(key, header, Uint8Array.of(1, 2, 3)), before);
 * ```
 */
export async function loadNativeCipher(
  prefer: "libcrypto" | "node:crypto" = "libcrypto",
): Promise<string> {
  let why = "not asked";
  if (prefer === "libcrypto") {
    const opened = libcrypto ?? LibcryptoChaCha.open();
    if (opened instanceof LibcryptoChaCha) {
      libcrypto = opened;
      using = "libcrypto";
      return `libcrypto (${opened.path})`;
    }
    why = opened.unavailable;
  }
  native ??= await import("node:crypto");
  using = "node:crypto";
  return `node:crypto (libcrypto: ${why})`;
}

/**
 * The libcrypto {@linkcode loadNativeCipher} opened, if it did.
 *
 * @returns its path, or null
 */
export function libcryptoPath(): string | null {
  return using === "libcrypto" ? libcrypto!.path : null;
}

/**
 * Which implementation seals and opens now.
 *
 * @returns it
 */
export function cipherImplementation(): CipherImplementation {
  return using;
}

const CIPHER = "chacha20-poly1305";
const AUTH_TAG = { authTagLength: TAG_LENGTH } as const;
/** "expand 32-byte k", ChaCha's constant. */
const SIGMA = Uint32Array.of(0x61707865, 0x3320646e, 0x79622d32, 0x6b206574);
/** Subkeys kept per key: more senders than this under one key only cost a derivation each. */
const SUBKEYS_PER_KEY = 16;

interface Subkey {
  readonly sender: Uint8Array;
  readonly subkey: Uint8Array;
}

const subkeys = new WeakMap<SyncKey, Subkey[]>();

/** The one IETF nonce buffer: the cipher copies it when it is created. */
const NONCE = new Uint8Array(12);

/** The IETF nonce of an envelope: four zero bytes and the sequence (header bytes 32-39). */
function ietfNonce(envelope: Uint8Array): Uint8Array {
  for (let i = 0; i < 8; i++) NONCE[4 + i] = envelope[32 + i];
  return NONCE;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < SENDER_LENGTH; i++) if (a[i] !== b[i]) return false;
  return true;
}

function cachedSubkey(key: SyncKey, sender: Uint8Array): Uint8Array | undefined {
  const list = subkeys.get(key);
  if (list === undefined) return undefined;
  for (const entry of list) if (sameBytes(entry.sender, sender)) return entry.subkey;
  return undefined;
}

/** HChaCha20 of the key's AEAD key and the sender (the XChaCha nonce's first 16 bytes). */
function deriveSubkey(key: SyncKey, sender: Uint8Array): Uint8Array {
  const aead = key.aeadKey();
  const k = new Uint32Array(8);
  const n = new Uint32Array(4);
  const kv = new DataView(aead.buffer, aead.byteOffset, 32);
  const nv = new DataView(sender.buffer, sender.byteOffset, SENDER_LENGTH);
  for (let i = 0; i < 8; i++) k[i] = kv.getUint32(4 * i, true);
  for (let i = 0; i < 4; i++) n[i] = nv.getUint32(4 * i, true);
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, n, out);
  const bytes = new Uint8Array(32);
  const bv = new DataView(bytes.buffer);
  for (let i = 0; i < 8; i++) bv.setUint32(4 * i, out[i], true);
  return bytes;
}

function keepSubkey(key: SyncKey, sender: Uint8Array, subkey: Uint8Array): Uint8Array {
  let list = subkeys.get(key);
  if (list === undefined) subkeys.set(key, list = []);
  if (list.length >= SUBKEYS_PER_KEY) list.shift();
  list.push({ sender: sender.slice(), subkey });
  return subkey;
}

/**
 * The subkey a sender seals with under `key` (HChaCha20 of the key and the sender; kept): what
 * the sealing thread (lib/secure/sealer.ts) is given instead of the key.
 *
 * @param key the key
 * @param sender the sender identity, 16 bytes
 * @returns 32 bytes
 */
export function sealingSubkey(key: SyncKey, sender: Uint8Array): Uint8Array {
  return subkey(key, sender);
}

/** The subkey of this daemon's own sender (sealing), derived at its first envelope. */
function subkey(key: SyncKey, sender: Uint8Array): Uint8Array {
  return cachedSubkey(key, sender) ?? keepSubkey(key, sender, deriveSubkey(key, sender));
}
