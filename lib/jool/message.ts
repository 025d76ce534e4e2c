/**
 * Jool's Generic Netlink messages as joold speaks them: the requests it sends (JOOLD_ACK,
 * JOOLD_ADD, JOOLD_ADVERTISE, GLOBAL_UPDATE ss-enabled, GLOBAL_FOREACH, INSTANCE_HELLO) and the
 * messages the kernel sends (session batches, replies, error reports). Pure byte functions.
 *
 * @module
 */

import {
  concat,
  encodeAttribute,
  NLA_F_NESTED,
  parseAttributes,
  readString,
  readU16,
} from "../netlink/attribute.ts";
import { encodeMessage, type Message, NLM_F_REQUEST } from "../netlink/message.ts";
import { decodeGenlHeader, encodeGenlHeader, GENL_HDRLEN } from "../genetlink/controller.ts";
import {
  decodeJoolHeader,
  encodeJoolHeader,
  type JoolHeader,
  JOOLNL_HDRLEN,
  JOOLNLHDR_FLAGS_ERROR,
  XT_NAT64,
} from "./header.ts";

/** enum joolnl_attr_root (common/config.h). */
export const JNLAR_GLOBALS = 2;
/** Root attribute holding session entries. */
export const JNLAR_SESSION_ENTRIES = 7;
/** Paging offset (u8) of GLOBAL_FOREACH. */
export const JNLAR_OFFSET_U8 = 9;
/** enum joolnl_attr_global: ss-enabled (same id in 4.1.9 and 4.1.13). */
export const JNLAG_JOOLD_ENABLED = 27;
/** enum joolnl_attr_error: the error code (u16). */
export const JNLAERR_CODE = 1;
/** enum joolnl_attr_error: the error message (string). */
export const JNLAERR_MSG = 2;
/** enum joolnl_attr_instance_status: INSTANCE_HELLO's reply (u8). */
export const JNLAIS_STATUS = 1;
/** Instance status: it exists. */
export const IHS_ALIVE = 0;
/** The genl version userspace sends. */
export const GENL_VERSION_REQUEST = 1;

/** Where a request goes and what it says in its headers. */
export interface RequestTarget {
  /** Jool's family id (resolved through nlctrl). */
  readonly familyId: number;
  /** Header version to send: the running kernel's, so its version check passes. */
  readonly version: number;
  /** Instance name. */
  readonly iname: string;
  /** Sequence number. */
  readonly seq: number;
  /** Our port id (or 0). */
  readonly pid: number;
}

/**
 * Builds a Jool request.
 *
 * @param target family, version, instance, seq, pid
 * @param cmd the command number
 * @param attributes encoded attributes after the Jool header
 * @returns the netlink message
 * @example
 * ```ts
 * joolRequest({ familyId: 0x20, version: 0x04010900, iname: "default", seq: 1, pid: 0 }, 29);
 * ```
 */
export function joolRequest(
  target: RequestTarget,
  cmd: number,
  attributes: Uint8Array = new Uint8Array(),
): Uint8Array<ArrayBuffer> {
  return encodeMessage(
    { type: target.familyId, flags: NLM_F_REQUEST, seq: target.seq, pid: target.pid },
    concat(
      encodeGenlHeader({ cmd, version: GENL_VERSION_REQUEST }),
      encodeJoolHeader({ version: target.version, xt: XT_NAT64, flags: 0, iname: target.iname }),
      attributes,
    ),
  );
}

/**
 * The attribute JOOLD_ADD carries: SESSION_ENTRIES|NLA_F_NESTED around the datagram, unchanged.
 *
 * @param payload the datagram from the sync network
 * @returns the attribute
 */
export function sessionEntriesAttribute(payload: Uint8Array): Uint8Array<ArrayBuffer> {
  return encodeAttribute(JNLAR_SESSION_ENTRIES | NLA_F_NESTED, payload);
}

/**
 * The attributes of GLOBAL_UPDATE that turn ss-enabled on.
 *
 * @param enabled the value
 * @returns the GLOBALS nest
 */
export function ssEnabledAttribute(enabled: boolean): Uint8Array<ArrayBuffer> {
  return encodeAttribute(
    JNLAR_GLOBALS | NLA_F_NESTED,
    encodeAttribute(JNLAG_JOOLD_ENABLED, Uint8Array.of(enabled ? 1 : 0)),
  );
}

/** A decoded Jool message from the kernel. */
export interface JoolMessage {
  /** genlmsghdr command. */
  readonly cmd: number;
  /** genlmsghdr version. */
  readonly genlVersion: number;
  /** The Jool header. */
  readonly header: JoolHeader;
  /** Everything after the Jool header (attributes): a view. */
  readonly attributes: Uint8Array;
}

/**
 * Decodes the body of a netlink message of Jool's family.
 *
 * @param message a message whose type is Jool's family id
 * @returns genl and Jool headers and the attribute bytes
 * @throws {RangeError} when headers are truncated or the magic is wrong
 */
export function decodeJoolMessage(message: Message): JoolMessage {
  const genl = decodeGenlHeader(message.body);
  const header = decodeJoolHeader(message.body.subarray(GENL_HDRLEN));
  return {
    cmd: genl.cmd,
    genlVersion: genl.version,
    header,
    attributes: message.body.subarray(GENL_HDRLEN + JOOLNL_HDRLEN),
  };
}

/**
 * Finds the SESSION_ENTRIES payload of a kernel batch.
 *
 * @param message the decoded Jool message
 * @returns the payload (a view), or null when the message carries none
 * @throws {RangeError} when the attributes are malformed
 */
export function batchPayload(message: JoolMessage): Uint8Array | null {
  for (const a of parseAttributes(message.attributes)) {
    if (a.type === JNLAR_SESSION_ENTRIES) return a.payload;
  }
  return null;
}

/** An error the kernel reported in Jool's own format. */
export interface JoolErrorReport {
  /** Positive errno. */
  readonly code: number;
  /** The kernel's message. */
  readonly message: string;
}

/**
 * Reads a Jool error report (joolnlhdr ERROR flag, JNLAERR_CODE and JNLAERR_MSG).
 *
 * @param message the decoded Jool message
 * @returns the report, or null when the message is not an error report
 */
export function errorReport(message: JoolMessage): JoolErrorReport | null {
  if ((message.header.flags & JOOLNLHDR_FLAGS_ERROR) === 0) return null;
  let code = 0;
  let text = "";
  try {
    for (const a of parseAttributes(message.attributes)) {
      if (a.type === JNLAERR_CODE) code = readU16(a);
      else if (a.type === JNLAERR_MSG) text = readString(a);
    }
  } catch {
    text ||= "(malformed error report)";
  }
  return { code, message: text };
}

/**
 * Reads a global's u8 value out of a GLOBAL_FOREACH reply.
 *
 * @param message the decoded reply
 * @param id the global's JNLAG_* id
 * @returns the value, or undefined when the reply does not carry it
 */
export function globalU8(message: JoolMessage, id: number): number | undefined {
  for (const a of parseAttributes(message.attributes)) {
    if (a.type === id && a.payload.length >= 1) return a.payload[0];
  }
  return undefined;
}
