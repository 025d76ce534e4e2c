/**
 * The hot-path recognizer of the kernel's session batches: a datagram that is exactly one batch as
 * Jool multicasts it (`send_to_userspace()` in Jool's mod/common/joold.c: one message, sequence 0,
 * genl command 0, a zeroed joolnlhdr with the instance name, one SESSION_ENTRIES nest) is
 * recognized with fixed-offset reads and an instance-name compare, without decoding objects.
 *
 * The contract, held by a differential fuzz against the general decoder (parseMessages +
 * decodeJoolMessage + batchPayload; tests/jool/batch_test.ts, `deno task fuzz`): the recognizer
 * never accepts what the general path rejects and never returns a different payload; it may
 * decline shapes the general path accepts (two messages in one datagram, a non-zero command, the
 * error flag, an attribute before SESSION_ENTRIES), which then take the general path.
 *
 * Every offset is named and derived from the header sizes (docs/PROTOCOL.md, "Netlink header",
 * "Generic Netlink header", "Jool header"); multi-byte fields are read byte by byte, so the
 * function needs no DataView and allocates nothing but the result of a batch of our instance.
 *
 * @module
 */

import { GENL_HDRLEN } from "../genetlink/controller.ts";
import { align4, NLA_HDRLEN, NLA_TYPE_MASK } from "../netlink/attribute.ts";
import { NLMSG_HDRLEN, NLMSG_LEN, NLMSG_SEQ, NLMSG_TYPE } from "../netlink/message.ts";
import { INAME_MAX_SIZE, JOOLNL_HDRLEN, JOOLNLHDR_FLAGS_ERROR } from "./header.ts";
import { JNLAR_SESSION_ENTRIES } from "./message.ts";

// struct nlmsghdr (linux/netlink.h) starts the message: NLMSG_LEN, NLMSG_TYPE and NLMSG_SEQ
// (lib/netlink/message.ts) are its fields' offsets.

// struct genlmsghdr (linux/genetlink.h), right after the nlmsghdr.
/** The genlmsghdr. */
const GENL = NLMSG_HDRLEN;
/** cmd: u8, 0 on a batch. */
const GENL_CMD = GENL + 0;

// struct joolnlhdr (Jool's common/config.h), right after the genlmsghdr.
/** The joolnlhdr. */
const JOOLNL = GENL + GENL_HDRLEN;
/** magic: "jool". */
const JOOLNL_MAGIC = JOOLNL + 0;
/** version: u32, network order. */
const JOOLNL_VERSION = JOOLNL + 4;
/** flags: u8 (JOOLNLHDR_FLAGS_*), after the u8 translator type. */
const JOOLNL_FLAGS = JOOLNL + 9;
/** iname: char[INAME_MAX_SIZE], NUL padded, after two reserved bytes; it ends the header. */
const JOOLNL_INAME = JOOLNL + JOOLNL_HDRLEN - INAME_MAX_SIZE;

// The first attribute (struct nlattr, linux/netlink.h), right after the joolnlhdr.
/** The first attribute. */
const ATTR = JOOLNL + JOOLNL_HDRLEN;
/** nla_len: u16, the attribute length including its header. */
const ATTR_LEN = ATTR + 0;
/** nla_type: u16, with NLA_F_NESTED (and possibly NLA_F_NET_BYTEORDER). */
const ATTR_TYPE = ATTR + 2;

/** Where a batch's payload (the SESSION_ENTRIES content, the UDP datagram) starts: 52. */
export const BATCH_PAYLOAD_START = ATTR + NLA_HDRLEN;

/** "jool" as bytes. */
const MAGIC_J = 0x6a, MAGIC_O = 0x6f, MAGIC_L = 0x6c;

/** What {@linkcode recognizeBatch} found. */
export type BatchRecognition =
  /**
   * A session batch of our instance. `version` is the joolnlhdr's packed version (read in network
   * order, as unpackVersion in lib/jool/version.ts takes it); the payload is the SESSION_ENTRIES
   * attribute's content, `bytes.subarray(payloadStart, payloadEnd)`.
   */
  | { kind: "batch"; payloadStart: number; payloadEnd: number; version: number }
  /** A well-formed batch of another Jool instance in this namespace: ignore it. */
  | { kind: "other-instance" }
  /** Anything else: hand the datagram to the general decoder. */
  | { kind: "not-a-batch" };

const OTHER_INSTANCE: BatchRecognition = Object.freeze({ kind: "other-instance" });
const NOT_A_BATCH: BatchRecognition = Object.freeze({ kind: "not-a-batch" });

/** {@linkcode classifyBatch}: a well-formed batch of another instance. */
export const BATCH_OTHER_INSTANCE = -1;
/** {@linkcode classifyBatch}: not a plain batch (take the general path). */
export const BATCH_NONE = 0;

/**
 * Encodes an instance name as the joolnlhdr carries it, for {@linkcode recognizeBatch}.
 *
 * @param name the instance name (at most 15 bytes of UTF-8, no NUL)
 * @returns 16 bytes, NUL padded
 * @throws {RangeError} when the name is longer than 15 bytes or contains a NUL
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { instanceName16 } from "./batch.ts";
 *
 * assert.deepEqual(instanceName16("ab"), Uint8Array.of(0x61, 0x62, ...new Array(14).fill(0)));
 * ```
 */
export function instanceName16(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length >= INAME_MAX_SIZE) {
    throw new RangeError(
      `instance name "${name}" is ${bytes.length} bytes, longer than ${INAME_MAX_SIZE - 1}`,
    );
  }
  if (bytes.includes(0)) {
    throw new RangeError(`instance name ${JSON.stringify(name)} contains a NUL byte`);
  }
  const out = new Uint8Array(INAME_MAX_SIZE);
  out.set(bytes);
  return out;
}

/**
 * The non-allocating form of {@linkcode recognizeBatch}, for the receive loop: the same decision
 * as a number. A batch's payload is `bytes.subarray(BATCH_PAYLOAD_START, end)` and its version is
 * {@linkcode batchVersion}`(bytes)`.
 *
 * @param bytes the receive buffer
 * @param length the datagram's length in it
 * @param familyId Jool's Generic Netlink family id
 * @param iname16 our instance name from {@linkcode instanceName16}
 * @returns the payload's end (> BATCH_PAYLOAD_START - 1) for a batch of our instance,
 *   {@linkcode BATCH_OTHER_INSTANCE} or {@linkcode BATCH_NONE}
 * @throws {RangeError} when `length` is outside `bytes` or `iname16` is not 16 NUL-terminated bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BATCH_NONE, classifyBatch, instanceName16 } from "./batch.ts";
 *
 * assert.equal(classifyBatch(new Uint8Array(16), 16, 0x20, instanceName16("default")), BATCH_NONE);
 * ```
 */
export function classifyBatch(
  bytes: Uint8Array,
  length: number,
  familyId: number,
  iname16: Uint8Array,
): number {
  if (!(length >= 0 && length <= bytes.length)) {
    throw new RangeError(`datagram length ${length} is outside the ${bytes.length}-byte buffer`);
  }
  if (iname16.length !== INAME_MAX_SIZE || iname16[INAME_MAX_SIZE - 1] !== 0) {
    throw new RangeError("the instance name must be 16 NUL-terminated bytes (instanceName16)");
  }
  const b = bytes;
  if (length < BATCH_PAYLOAD_START) return BATCH_NONE;
  // One message filling the datagram, with or without its trailing padding.
  const messageLength = u32le(b, NLMSG_LEN);
  if (messageLength !== length && align4(messageLength) !== length) return BATCH_NONE;
  if (messageLength < BATCH_PAYLOAD_START) return BATCH_NONE;
  if (u16le(b, NLMSG_TYPE) !== familyId || u32le(b, NLMSG_SEQ) !== 0 || b[GENL_CMD] !== 0) {
    return BATCH_NONE;
  }
  if (
    b[JOOLNL_MAGIC] !== MAGIC_J || b[JOOLNL_MAGIC + 1] !== MAGIC_O ||
    b[JOOLNL_MAGIC + 2] !== MAGIC_O || b[JOOLNL_MAGIC + 3] !== MAGIC_L
  ) {
    return BATCH_NONE;
  }
  if ((b[JOOLNL_FLAGS] & JOOLNLHDR_FLAGS_ERROR) !== 0) return BATCH_NONE;
  const attrLength = u16le(b, ATTR_LEN);
  if ((u16le(b, ATTR_TYPE) & NLA_TYPE_MASK) !== JNLAR_SESSION_ENTRIES) return BATCH_NONE;
  if (attrLength < NLA_HDRLEN || ATTR + attrLength > messageLength) return BATCH_NONE;
  // The name as strcmp() compares it (and the general decoder, which reads up to the first NUL):
  // bytes after the terminator do not count.
  for (let i = 0; i < INAME_MAX_SIZE; i++) {
    const c = iname16[i];
    if (b[JOOLNL_INAME + i] !== c) return BATCH_OTHER_INSTANCE;
    if (c === 0) break;
  }
  // The kernel sends no attribute after SESSION_ENTRIES, so this loop normally does not turn; it
  // declines a message whose further attributes the general decoder would reject as malformed.
  let at = ATTR + align4(attrLength);
  while (at < messageLength) {
    if (messageLength - at < NLA_HDRLEN) return BATCH_NONE;
    const next = u16le(b, at);
    if (next < NLA_HDRLEN || at + next > messageLength) return BATCH_NONE;
    at += align4(next);
  }
  return ATTR + attrLength;
}

/**
 * Recognizes a datagram that is exactly one session batch of the kernel.
 *
 * "batch" requires: `length` covers exactly one netlink message (nlmsg_len equal to it, or to it
 * without the padding); its type is `familyId`, its sequence number 0, its genl command 0; the
 * joolnlhdr's magic is "jool" and its error flag clear; its first attribute is SESSION_ENTRIES
 * (flags masked) with a length inside the message, any further attributes well-formed; and the
 * instance name equals ours up to its NUL. A message that passes everything up to the name but
 * names another instance is "other-instance" (its trailing attributes are not checked: it is
 * ignored either way). Everything else is "not-a-batch".
 *
 * @param bytes the receive buffer (only `[0, length)` is read)
 * @param length the datagram's length in it
 * @param familyId Jool's Generic Netlink family id
 * @param iname16 our instance name from {@linkcode instanceName16}
 * @returns what the datagram is; for a batch, where its payload lies and the header version
 * @throws {RangeError} when `length` is outside `bytes` or `iname16` is not 16 NUL-terminated bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { instanceName16, recognizeBatch } from "./batch.ts";
 *
 * // A batch of instance "default" (family 0x20, Jool 4.1.13) carrying one 4-byte entry.
 * const bytes = Uint8Array.of(
 *   60, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: len 60, type 0x20, seq 0
 *   0, 2, 0, 0, // genlmsghdr: cmd 0, version 2
 *   0x6a, 0x6f, 0x6f, 0x6c, 4, 1, 13, 0, 2, 0, 0, 0, // joolnlhdr: "jool", 4.1.13.0, NAT64
 *   ...new TextEncoder().encode("default"), 0, 0, 0, 0, 0, 0, 0, 0, 0, // iname[16]
 *   12, 0, 0x07, 0x80, // SESSION_ENTRIES | NLA_F_NESTED, length 12
 *   8, 0, 1, 0, 1, 2, 3, 4, // one entry
 * );
 * const r = recognizeBatch(bytes, bytes.length, 0x20, instanceName16("default"));
 * assert.deepEqual(r, { kind: "batch", payloadStart: 52, payloadEnd: 60, version: 0x04010d00 });
 * assert.equal(recognizeBatch(bytes, 60, 0x20, instanceName16("other")).kind, "other-instance");
 * assert.equal(recognizeBatch(bytes, 60, 0x21, instanceName16("default")).kind, "not-a-batch");
 * ```
 */
export function recognizeBatch(
  bytes: Uint8Array,
  length: number,
  familyId: number,
  iname16: Uint8Array,
): BatchRecognition {
  const end = classifyBatch(bytes, length, familyId, iname16);
  if (end === BATCH_NONE) return NOT_A_BATCH;
  if (end === BATCH_OTHER_INSTANCE) return OTHER_INSTANCE;
  return {
    kind: "batch",
    payloadStart: BATCH_PAYLOAD_START,
    payloadEnd: end,
    version: batchVersion(bytes),
  };
}

/**
 * The joolnlhdr version of a datagram {@linkcode classifyBatch} accepted.
 *
 * @param bytes the datagram (at least 48 bytes)
 * @returns the packed version, network order (as unpackVersion in lib/jool/version.ts takes it)
 */
export function batchVersion(bytes: Uint8Array): number {
  const at = JOOLNL_VERSION;
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

function u16le(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8);
}

function u32le(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
