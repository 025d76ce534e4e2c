/**
 * The kernel channel's slow path: a datagram the batch recognizer (lib/jool/batch.ts) did not
 * take is decoded in full (lib/kernel/classify.ts) and each of its messages goes where it belongs:
 * batches to the channel, replies and refusals to the request that awaits them (or, for nobody's,
 * to the advertise callback and the error handler), nlctrl's notifications to the family, bad
 * bytes to the error handler. It owns the counters of what it drops.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import type { FamilyInfo } from "../genetlink/controller.ts";
import type { JoolMessage } from "../jool/message.ts";
import type { NetlinkConn } from "../netlink/conn.ts";
import { classifyDatagram } from "./classify.ts";
import { KernelError, MalformedKernelMessageError } from "./error.ts";
import type { PendingReplies } from "./pending.ts";

/** Where the slow path's messages go. */
export interface DispatchTarget {
  /** The daemon's counters (`kernelOtherInstanceBatches`, `kernelRefusals`, `kernelMalformedMessages`). */
  readonly counters: Counters;
  /** Our instance name. */
  readonly instance: string;
  /** Names the request a stray reply answers. */
  readonly conn: Pick<NetlinkConn, "opFor">;
  /** The awaited requests. */
  readonly pending: PendingReplies;
  /** A batch of our instance (`payload` null when its attributes are malformed). */
  batch(payload: Uint8Array | null, version: number, readAt: number): void;
  /** nlctrl announced a family or its removal. */
  family(change: "new" | "del", family: FamilyInfo): void;
  /** A refusal nobody awaited, or bytes that could not be decoded. */
  error(error: Error): void;
  /** The kernel's success reply to a JOOLD_ADVERTISE. */
  advertiseDone(): void;
}

/**
 * Dispatches every message of a datagram, in order.
 *
 * @param datagram what one receive returned (a view of the receive buffer: used inside the call)
 * @param familyId Jool's family id now
 * @param readAt when it was read (`performance.now()`), for the batches' ACK latency
 * @param target where the messages go
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createCounters } from "../counters.ts";
 * import { dispatchGeneral } from "./dispatch.ts";
 * import { PendingReplies } from "./pending.ts";
 *
 * const errors: Error[] = [];
 * const target = {
 *   counters: createCounters(), instance: "default", conn: { opFor: () => "request" },
 *   pending: new PendingReplies(), batch: () => {}, family: () => {},
 *   error: (e: Error) => errors.push(e), advertiseDone: () => {},
 * };
 * dispatchGeneral(new Uint8Array(3), 0x23, 0, target);
 * assert.match(errors[0].message, /^malformed netlink datagram/);
 * assert.equal(target.counters.kernelMalformedMessages, 1);
 * ```
 */
export function dispatchGeneral(
  datagram: Uint8Array,
  familyId: number,
  readAt: number,
  target: DispatchTarget,
): void {
  const { counters, instance, conn, pending } = target;
  for (const e of classifyDatagram(datagram, familyId, instance)) {
    if (e.kind === "batch") target.batch(e.payload, e.version, readAt);
    else if (e.kind === "other-instance") counters.kernelOtherInstanceBatches++;
    else if (e.kind === "malformed") {
      counters.kernelMalformedMessages++;
      target.error(new MalformedKernelMessageError(e.what, e.cause));
    } else if (e.kind === "family") target.family(e.change, e.family);
    else if (e.kind === "refusal") {
      const waiter = pending.take(e.seq);
      const error = new KernelError(waiter?.op ?? conn.opFor(e.seq), e.errno, e.text, instance);
      if (waiter) waiter.reject(error);
      else {
        counters.kernelRefusals++;
        target.error(error);
      }
    } else {
      const waiter = pending.take(e.seq);
      if (waiter) waiter.resolve(copyMessage(e.message));
      else if (conn.opFor(e.seq) === "JOOLD_ADVERTISE") target.advertiseDone();
    }
  }
}

/** A reply the waiter may keep: its attributes copied out of the receive buffer. */
function copyMessage(m: JoolMessage): JoolMessage {
  return { ...m, attributes: m.attributes.slice() };
}
