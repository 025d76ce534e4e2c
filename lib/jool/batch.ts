/**
 * Recognizes a session batch as the kernel multicasts it, with a few reads at named offsets and no
 * decoded objects: the kernel channel's hot path. A datagram that is exactly one Jool message of
 * the given family, with sequence number 0, command 0, no error flag and SESSION_ENTRIES as its
 * first attribute is a batch; anything else is "not-a-batch" and goes to the general decoder.
 *
 * @module
 */

import { GENL_HDRLEN } from "../genetlink/controller.ts";
import { align4, NLA_HDRLEN, NLA_TYPE_MASK } from "../netlink/attribute.ts";
import { NLMSG_HDRLEN } from "../netlink/message.ts";
import { INAME_MAX_SIZE, JOOLNL_HDRLEN, JOOLNLHDR_FLAGS_ERROR } from "./header.ts";
import { JNLAR_SESSION_ENTRIES } from "./message.ts";

// struct nlmsghdr (host order).
const NLMSG_LEN = 0;
const NLMSG_TYPE = 4;
const NLMSG_SEQ = 8;
// struct genlmsghdr.
const GENL_CMD = NLMSG_HDRLEN;
// struct joolnlhdr: magic "jool", version (network order), xt, flags, reserved, iname[16].
const JOOL_MAGIC = NLMSG_HDRLEN + GENL_HDRLEN;
const JOOL_VERSION = JOOL_MAGIC + 4;
const JOOL_FLAGS = JOOL_MAGIC + 9;
const JOOL_INAME = JOOL_MAGIC + 12;
// The first attribute (struct nlattr, host order) and its payload.
const ATTR = JOOL_MAGIC + JOOLNL_HDRLEN;
const ATTR_LEN = ATTR;
const ATTR_TYPE = ATTR + 2;
const PAYLOAD = ATTR + NLA_HDRLEN;
const MAGIC = [0x6a, 0x6f, 0x6f, 0x6c]; // "jool"

/** What {@linkcode recognizeBatch} found. */
export type BatchRecognition =
  | {
    /** A batch of our instance. */
    kind: "batch";
    /** Where the SESSION_ENTRIES payload starts in the input. */
    payloadStart: number;
    /** Where it ends (exclusive). */
    payloadEnd: number;
    /** The joolnlhdr's packed version (read in network order). */
    version: number;
  }
  | {
    /** A batch of another Jool instance in this namespace. */
    kind: "other-instance";
  }
  | {
    /** Anything else: take the general decoder. */
    kind: "not-a-batch";
  };

const OTHER_INSTANCE: BatchRecognition = Object.freeze({ kind: "other-instance" });
const NOT_A_BATCH: BatchRecognition = Object.freeze({ kind: "not-a-batch" });

function u16(b: Uint8Array, at: number): number {
  return b[at] | (b[at + 1] << 8); // host order: little endian on the targets
}

function u32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

/**
 * Recognizes a session batch multicast by the kernel.
 *
 * @param bytes the receive buffer
 * @param length how many bytes of it the datagram fills
 * @param familyId Jool's family id
 * @param iname16 our instance name as the joolnlhdr carries it ({@linkcode instanceName16})
 * @returns the payload's bounds and the header version, "other-instance", or "not-a-batch"
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { instanceName16, recognizeBatch } from "./batch.ts";
 *
 * assert.equal(recognizeBatch(new Uint8Array(16), 16, 0x23, instanceName16("default")).kind, "not-a-batch");
 * ```
 */
export function recognizeBatch(
  bytes: Uint8Array,
  length: number,
  familyId: number,
  iname16: Uint8Array,
): BatchRecognition {
  if (length < PAYLOAD || length > bytes.length) return NOT_A_BATCH;
  const messageLength = u32(bytes, NLMSG_LEN);
  if (messageLength < PAYLOAD || (messageLength !== length && align4(messageLength) !== length)) {
    return NOT_A_BATCH;
  }
  if (u16(bytes, NLMSG_TYPE) !== familyId || u32(bytes, NLMSG_SEQ) !== 0 || bytes[GENL_CMD] !== 0) {
    return NOT_A_BATCH;
  }
  for (let i = 0; i < MAGIC.length; i++) if (bytes[JOOL_MAGIC + i] !== MAGIC[i]) return NOT_A_BATCH;
  if ((bytes[JOOL_FLAGS] & JOOLNLHDR_FLAGS_ERROR) !== 0) return NOT_A_BATCH;
  const attrLength = u16(bytes, ATTR_LEN);
  if ((u16(bytes, ATTR_TYPE) & NLA_TYPE_MASK) !== JNLAR_SESSION_ENTRIES) return NOT_A_BATCH;
  if (attrLength < NLA_HDRLEN || ATTR + attrLength > messageLength) return NOT_A_BATCH;
  for (let i = 0; i < INAME_MAX_SIZE; i++) {
    if (bytes[JOOL_INAME + i] !== iname16[i]) return OTHER_INSTANCE;
  }
  const version = ((bytes[JOOL_VERSION] << 24) | (bytes[JOOL_VERSION + 1] << 16) |
    (bytes[JOOL_VERSION + 2] << 8) | bytes[JOOL_VERSION + 3]) >>> 0; // network order
  return { kind: "batch", payloadStart: PAYLOAD, payloadEnd: ATTR + attrLength, version };
}

/**
 * An instance name as the joolnlhdr carries it: 16 bytes, NUL padded (at most 15 bytes of name).
 *
 * @param name the instance name
 * @returns 16 bytes
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { instanceName16 } from "./batch.ts";
 *
 * assert.deepEqual(instanceName16("ab").subarray(0, 3), Uint8Array.of(0x61, 0x62, 0));
 * ```
 */
export function instanceName16(name: string): Uint8Array {
  const out = new Uint8Array(INAME_MAX_SIZE);
  out.set(new TextEncoder().encode(name).subarray(0, INAME_MAX_SIZE - 1));
  return out;
}
