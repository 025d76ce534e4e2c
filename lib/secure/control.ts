/**
 * The payloads of secure sync's control messages (the envelope kinds beyond data, lib/secure/
 * envelope.ts `Kind`). They travel sealed like data, so they are authenticated, replay-checked
 * and encrypted; docs/PROTOCOL.md, "Secure sync", has every byte. All fields network order:
 *
 * ```text
 * NACK (kind 1), 29 bytes           hello (kind 2), 1 byte      bulk done (kind 3), 17 bytes
 *  0 16 target: the sender asked     0 1 flags: 1 = want bulk    0 16 target: the announcer
 * 16  8 first sequence missing               2 = sync-ready     16  1 flags: 1 = no advertise
 * 24  4 count (1 or more)
 * 28  1 flags: 1 = resync
 * ```
 *
 * Pure functions over bytes.
 *
 * @module
 */

import { MAX_FIELD, SENDER_LENGTH } from "./envelope.ts";

/** Bytes of a NACK's payload. */
export const NACK_LENGTH = 29;
/** Bytes of a hello's payload. */
export const HELLO_LENGTH = 1;
/** Bytes of a bulk-done's payload. */
export const BULK_DONE_LENGTH = 17;

/** NACK flag: do not resend, advertise (the receiver can no longer accept the range). */
export const NACK_RESYNC = 1;
/** Hello flag: the sender just started and asks every peer for its table (an announce). */
export const HELLO_WANT_BULK = 1;
/** Hello flag: the sender is sync-ready (informational). */
export const HELLO_SYNC_READY = 2;
/** Bulk-done flag: the sender's kernel cannot advertise (Jool before 4.1.11): nothing was sent. */
export const BULK_NO_ADVERTISE = 1;

/** A receiver's request: resend `count` datagrams of `target` from `first` on. */
export interface Nack {
  /** The sender whose datagrams are missing (16 bytes). */
  readonly target: Uint8Array;
  /** The first missing sequence number. */
  readonly first: number;
  /** How many, 1 or more. */
  readonly count: number;
  /** {@linkcode NACK_RESYNC} or 0. */
  readonly flags: number;
}

/** A bulk-done: the bulk resync `target` asked for is complete. */
export interface BulkDone {
  /** The announcer it answers (16 bytes). */
  readonly target: Uint8Array;
  /** {@linkcode BULK_NO_ADVERTISE} or 0. */
  readonly flags: number;
}

/**
 * Encodes a NACK's payload.
 *
 * @param nack the request
 * @returns {@linkcode NACK_LENGTH} bytes
 * @throws {RangeError} for a field out of range
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNack, encodeNack } from "./control.ts";
 *
 * const nack = { target: new Uint8Array(16).fill(7), first: 5, count: 2, flags: 0 };
 * assert.deepEqual(decodeNack(encodeNack(nack)), nack);
 * ```
 */
export function encodeNack(nack: Nack): Uint8Array<ArrayBuffer> {
  if (nack.target.length !== SENDER_LENGTH) throw new RangeError("a NACK target is 16 bytes");
  if (!Number.isInteger(nack.first) || nack.first < 1 || nack.first > MAX_FIELD) {
    throw new RangeError(`NACK first sequence out of range: ${nack.first}`);
  }
  if (!Number.isInteger(nack.count) || nack.count < 1 || nack.count > 0xffffffff) {
    throw new RangeError(`NACK count out of range: ${nack.count}`);
  }
  const out = new Uint8Array(NACK_LENGTH);
  const view = new DataView(out.buffer);
  out.set(nack.target, 0);
  view.setUint32(16, Math.floor(nack.first / 2 ** 32), false);
  view.setUint32(20, nack.first >>> 0, false);
  view.setUint32(24, nack.count, false);
  out[28] = nack.flags & 0xff;
  return out;
}

/**
 * Decodes a NACK's payload (it verified: it is a peer's, but may still be broken or hostile).
 *
 * @param payload the opened payload
 * @returns the request (`target` is a copy)
 * @throws {RangeError} for another length, a count of 0, a first sequence of 0 or beyond 2^53
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeNack } from "./control.ts";
 * assert.throws(() => decodeNack(new Uint8Array(29)), RangeError); // first sequence 0
 * ```
 */
export function decodeNack(payload: Uint8Array): Nack {
  if (payload.length !== NACK_LENGTH) {
    throw new RangeError(`a NACK is ${NACK_LENGTH} bytes, got ${payload.length}`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const high = view.getUint32(16, false);
  const first = high * 2 ** 32 + view.getUint32(20, false);
  const count = view.getUint32(24, false);
  if (high >= 2 ** 21 || first < 1) throw new RangeError(`NACK first sequence out of range`);
  if (count < 1) throw new RangeError("a NACK for 0 datagrams");
  return { target: payload.slice(0, 16), first, count, flags: payload[28] };
}

/**
 * Encodes a hello's payload.
 *
 * @param flags {@linkcode HELLO_WANT_BULK}, {@linkcode HELLO_SYNC_READY}
 * @returns {@linkcode HELLO_LENGTH} bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeHello, encodeHello, HELLO_WANT_BULK } from "./control.ts";
 * assert.equal(decodeHello(encodeHello(HELLO_WANT_BULK)), HELLO_WANT_BULK);
 * ```
 */
export function encodeHello(flags: number): Uint8Array<ArrayBuffer> {
  return Uint8Array.of(flags & 0xff);
}

/**
 * Decodes a hello's payload.
 *
 * @param payload the opened payload
 * @returns its flags
 * @throws {RangeError} for another length
 */
export function decodeHello(payload: Uint8Array): number {
  if (payload.length !== HELLO_LENGTH) {
    throw new RangeError(`a hello is ${HELLO_LENGTH} byte, got ${payload.length}`);
  }
  return payload[0];
}

/**
 * Encodes a bulk-done's payload.
 *
 * @param done the announcer answered and the flags
 * @returns {@linkcode BULK_DONE_LENGTH} bytes
 * @throws {RangeError} for a target that is not 16 bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeBulkDone, encodeBulkDone } from "./control.ts";
 *
 * const done = { target: new Uint8Array(16).fill(1), flags: 1 };
 * assert.deepEqual(decodeBulkDone(encodeBulkDone(done)), done);
 * ```
 */
export function encodeBulkDone(done: BulkDone): Uint8Array<ArrayBuffer> {
  if (done.target.length !== SENDER_LENGTH) throw new RangeError("a bulk-done target is 16 bytes");
  const out = new Uint8Array(BULK_DONE_LENGTH);
  out.set(done.target, 0);
  out[16] = done.flags & 0xff;
  return out;
}

/**
 * Decodes a bulk-done's payload.
 *
 * @param payload the opened payload
 * @returns the announcer and the flags (`target` is a copy)
 * @throws {RangeError} for another length
 */
export function decodeBulkDone(payload: Uint8Array): BulkDone {
  if (payload.length !== BULK_DONE_LENGTH) {
    throw new RangeError(`a bulk-done is ${BULK_DONE_LENGTH} bytes, got ${payload.length}`);
  }
  return { target: payload.slice(0, 16), flags: payload[16] };
}
