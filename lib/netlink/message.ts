/**
 * Netlink messages (`struct nlmsghdr`, linux/netlink.h): a 16-byte header in HOST order, the body
 * padded to 4 bytes; several messages may share one datagram. Also NLMSG_ERROR with extended ack.
 *
 * @module
 */

import { align4, parseAttributes, readString } from "./attribute.ts";

/** linux/netlink.h message types: error (or ack) message. */
export const NLMSG_ERROR = 2;
/** End of a multi-part dump. */
export const NLMSG_DONE = 3;
/** linux/netlink.h flags: it is a request. */
export const NLM_F_REQUEST = 0x1;
/** NLMSG_ERROR flag: the original message was capped to its header. */
export const NLM_F_CAPPED = 0x100;
/** NLMSG_ERROR flag: extended ack TLVs follow. */
export const NLM_F_ACK_TLVS = 0x200;
/** enum nlmsgerr_attrs: the error message string. */
export const NLMSGERR_ATTR_MSG = 1;
/** Size of `struct nlmsghdr`. */
export const NLMSG_HDRLEN = 16;

// The fields of struct nlmsghdr (linux/netlink.h), in host order (little endian on every Jool
// platform we run): their offsets from the start of the message.
/** nlmsg_len: u32, the message length including the header. */
export const NLMSG_LEN = 0;
/** nlmsg_type: u16, the message type (a Generic Netlink family id). */
export const NLMSG_TYPE = 4;
/** nlmsg_flags: u16, NLM_F_*. */
export const NLMSG_FLAGS = 6;
/** nlmsg_seq: u32, the sequence number (0 on what the kernel multicasts). */
export const NLMSG_SEQ = 8;
/** nlmsg_pid: u32, the sender's port id. */
export const NLMSG_PID = 12;

/** A netlink message header. */
export interface MessageHeader {
  /** Length of the whole message, header included (filled in by the encoder). */
  readonly length?: number;
  /** Message type: a family id for generic netlink. */
  readonly type: number;
  /** NLM_F_* flags. */
  readonly flags: number;
  /** Sequence number. */
  readonly seq: number;
  /** Sender's port id. */
  readonly pid: number;
}

/** A decoded message: header and body (a view into the datagram). */
export interface Message extends MessageHeader {
  /** The body after the 16-byte header, without padding. */
  readonly body: Uint8Array;
}

/**
 * Encodes a message.
 *
 * @param header type, flags, seq, pid
 * @param body the body (e.g. a genlmsghdr and attributes)
 * @returns the bytes
 * @example
 * ```ts
 * encodeMessage({ type: 0x10, flags: 1, seq: 1, pid: 0 }, new Uint8Array(4)).length; // 20
 * ```
 */
export function encodeMessage(header: MessageHeader, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const length = NLMSG_HDRLEN + body.length;
  const out = new Uint8Array(align4(length));
  const view = new DataView(out.buffer);
  view.setUint32(NLMSG_LEN, length, true);
  view.setUint16(NLMSG_TYPE, header.type, true);
  view.setUint16(NLMSG_FLAGS, header.flags, true);
  view.setUint32(NLMSG_SEQ, header.seq >>> 0, true);
  view.setUint32(NLMSG_PID, header.pid >>> 0, true);
  out.set(body, NLMSG_HDRLEN);
  return out;
}

/**
 * Splits a datagram into messages.
 *
 * @param bytes what one recv() returned
 * @returns the messages
 * @throws {RangeError} when a header is truncated or a length is impossible
 * @example
 * ```ts
 * parseMessages(encodeMessage({ type: 3, flags: 0, seq: 0, pid: 0 }, new Uint8Array()))[0].type; // 3
 * ```
 */
export function parseMessages(bytes: Uint8Array): Message[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Message[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < NLMSG_HDRLEN) {
      throw new RangeError(`truncated netlink header: ${bytes.length - offset} bytes`);
    }
    const length = view.getUint32(offset + NLMSG_LEN, true);
    if (length < NLMSG_HDRLEN || offset + length > bytes.length) {
      throw new RangeError(
        `netlink message length ${length} does not fit the ${bytes.length - offset} bytes received`,
      );
    }
    out.push({
      length,
      type: view.getUint16(offset + NLMSG_TYPE, true),
      flags: view.getUint16(offset + NLMSG_FLAGS, true),
      seq: view.getUint32(offset + NLMSG_SEQ, true),
      pid: view.getUint32(offset + NLMSG_PID, true),
      body: bytes.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  return out;
}

/** A decoded NLMSG_ERROR: errno 0 is an ack. */
export interface ErrorMessage {
  /** Positive errno (0 for an ack). */
  readonly errno: number;
  /** Header of the request it answers. */
  readonly request: MessageHeader;
  /** The kernel's extended-ack message, when it sent one. */
  readonly extAckMessage?: string;
}

/**
 * Decodes the body of an NLMSG_ERROR.
 *
 * @param message the NLMSG_ERROR message
 * @returns errno, the original header and the ext-ack text
 * @throws {RangeError} when the body is truncated
 */
export function parseErrorMessage(message: Message): ErrorMessage {
  const body = message.body;
  if (body.length < 4 + NLMSG_HDRLEN) {
    throw new RangeError(`truncated NLMSG_ERROR: ${body.length} bytes`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const error = view.getInt32(0, true);
  const echo = 4; // the request's header follows the error code
  const requestLength = view.getUint32(echo + NLMSG_LEN, true);
  const request: MessageHeader = {
    length: requestLength,
    type: view.getUint16(echo + NLMSG_TYPE, true),
    flags: view.getUint16(echo + NLMSG_FLAGS, true),
    seq: view.getUint32(echo + NLMSG_SEQ, true),
    pid: view.getUint32(echo + NLMSG_PID, true),
  };
  let extAckMessage: string | undefined;
  if (message.flags & NLM_F_ACK_TLVS) {
    const echoed = message.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(requestLength);
    const start = 4 + echoed;
    if (start <= body.length) {
      try {
        for (const a of parseAttributes(body.subarray(start))) {
          if (a.type === NLMSGERR_ATTR_MSG) extAckMessage = readString(a);
        }
      } catch {
        // a malformed ext-ack is not worth failing the error report over
      }
    }
  }
  return { errno: -error, request, extAckMessage };
}
