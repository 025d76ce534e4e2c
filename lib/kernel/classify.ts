/**
 * The general decoder of what the kernel sends the channel: every datagram the batch recognizer
 * (lib/jool/batch.ts) did not take is decoded in full, message by message, into events the channel
 * acts on. Pure: bytes in, events out, so it tests without a channel.
 *
 * @module
 */

import {
  CTRL_CMD_DELFAMILY,
  CTRL_CMD_NEWFAMILY,
  decodeGenlHeader,
  type FamilyInfo,
  GENL_ID_CTRL,
  parseFamilyReply,
} from "../genetlink/controller.ts";
import { batchPayload, decodeJoolMessage, errorReport, type JoolMessage } from "../jool/message.ts";
import { type Message, NLMSG_ERROR, parseErrorMessage, parseMessages } from "../netlink/message.ts";

/** What one message of a datagram from the kernel is. */
export type KernelEvent =
  | {
    /** A session batch of our instance; `payload` is null when its attributes are malformed. */
    readonly kind: "batch";
    /** The SESSION_ENTRIES payload (a view of the datagram), or null. */
    readonly payload: Uint8Array | null;
    /** The joolnlhdr's packed version. */
    readonly version: number;
  }
  | {
    /** A session batch of another instance. */
    readonly kind: "other-instance";
  }
  | {
    /** The kernel refused the request sent with `seq` (NLMSG_ERROR or a Jool error report). */
    readonly kind: "refusal";
    /** The request's sequence number. */
    readonly seq: number;
    /** Positive errno. */
    readonly errno: number;
    /** The kernel's words ("" when none). */
    readonly text: string;
  }
  | {
    /** A successful Jool reply to the request sent with `seq`. */
    readonly kind: "reply";
    /** The request's sequence number. */
    readonly seq: number;
    /** The reply (its attributes are a view of the datagram). */
    readonly message: JoolMessage;
  }
  | {
    /**
     * The controller announced a family (CTRL_CMD_NEWFAMILY: a module registered it) or its
     * removal (CTRL_CMD_DELFAMILY: the module is being unloaded), on nlctrl's "notify" group.
     */
    readonly kind: "family";
    /** Which. */
    readonly change: "new" | "del";
    /** The family as the controller describes it (ctrl_fill_info). */
    readonly family: FamilyInfo;
  }
  | {
    /** Bytes that could not be decoded. */
    readonly kind: "malformed";
    /**
     * What: "netlink datagram", "error reply", "Jool message", "session batch" or
     * "controller notification".
     */
    readonly what: string;
    /** The decoder's error. */
    readonly cause: Error;
  };

/**
 * Decodes a datagram from the kernel into events, in order. Messages of other families, acks and
 * the controller's multicast-group notifications give none.
 *
 * @param datagram what one receive returned
 * @param familyId Jool's family id
 * @param instance our instance name
 * @returns the events
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyDatagram } from "./classify.ts";
 *
 * assert.equal(classifyDatagram(new Uint8Array(3), 0x23, "default")[0].kind, "malformed");
 * ```
 */
export function classifyDatagram(
  datagram: Uint8Array,
  familyId: number,
  instance: string,
): KernelEvent[] {
  let messages: Message[];
  try {
    messages = parseMessages(datagram);
  } catch (error) {
    return [{ kind: "malformed", what: "netlink datagram", cause: error as Error }];
  }
  const events: KernelEvent[] = [];
  for (const m of messages) {
    if (m.type === NLMSG_ERROR) errorEvent(m, events);
    else if (m.type === familyId) joolEvent(m, instance, events);
    else if (m.type === GENL_ID_CTRL && m.seq === 0) controllerEvent(m, events);
  }
  return events;
}

function errorEvent(m: Message, events: KernelEvent[]): void {
  try {
    const e = parseErrorMessage(m);
    if (e.errno !== 0) {
      events.push({ kind: "refusal", seq: m.seq, errno: e.errno, text: e.extAckMessage ?? "" });
    }
  } catch (error) {
    events.push({ kind: "malformed", what: "error reply", cause: error as Error });
  }
}

/** nlctrl's notifications (genetlink.c: genl_ctrl_event -> ctrl_fill_info, sequence 0). */
function controllerEvent(m: Message, events: KernelEvent[]): void {
  try {
    const { cmd } = decodeGenlHeader(m.body);
    if (cmd !== CTRL_CMD_NEWFAMILY && cmd !== CTRL_CMD_DELFAMILY) return; // group changes
    const change = cmd === CTRL_CMD_NEWFAMILY ? "new" : "del";
    events.push({ kind: "family", change, family: parseFamilyReply(m.body) });
  } catch (error) {
    events.push({ kind: "malformed", what: "controller notification", cause: error as Error });
  }
}

function joolEvent(m: Message, instance: string, events: KernelEvent[]): void {
  let jm: JoolMessage;
  try {
    jm = decodeJoolMessage(m);
  } catch (error) {
    events.push({ kind: "malformed", what: "Jool message", cause: error as Error });
    return;
  }
  if (m.seq !== 0) { // a reply to one of our requests; batches are multicast with seq 0
    const report = errorReport(jm);
    events.push(
      report === null
        ? { kind: "reply", seq: m.seq, message: jm }
        : { kind: "refusal", seq: m.seq, errno: report.code, text: report.message },
    );
    return;
  }
  if (jm.header.iname !== instance) {
    events.push({ kind: "other-instance" });
    return;
  }
  let payload: Uint8Array | null = null;
  try {
    payload = batchPayload(jm);
  } catch (error) {
    events.push({ kind: "malformed", what: "session batch", cause: error as Error });
  }
  events.push({ kind: "batch", payload, version: jm.header.version });
}
