/**
 * The kernel channel's awaited requests: the replies the receive loop routes back by sequence
 * number while session batches keep flowing on the same socket. A connection's own
 * `NetlinkConn.request()` reads the socket itself and drops what is not its reply, so it serves
 * startup (before any group is joined) and not a channel whose drain loop owns the socket.
 *
 * @module
 */

import type { JoolMessage } from "../jool/message.ts";

/** A request whose reply someone awaits. */
export interface Waiter {
  /** The request's name, for errors. */
  readonly op: string;
  /** Settles the caller's promise with the reply. */
  readonly resolve: (message: JoolMessage) => void;
  /** Settles the caller's promise with an error. */
  readonly reject: (error: Error) => void;
}

/** The waiters by sequence number, each with its timeout. */
export class PendingReplies {
  readonly #waiters = new Map<number, Waiter & { readonly timer: ReturnType<typeof setTimeout> }>();

  /** How many replies are awaited. */
  get size(): number {
    return this.#waiters.size;
  }

  /**
   * Awaits the reply to the request sent with `seq`.
   *
   * @param seq the request's sequence number
   * @param op its name
   * @param timeoutMs how long to wait
   * @returns the reply, as {@linkcode take}'s caller resolves it
   * @throws {Error} when nothing settles it within `timeoutMs`
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PendingReplies } from "./pending.ts";
   *
   * const pending = new PendingReplies();
   * await assert.rejects(pending.wait(7, "GLOBAL_FOREACH", 1), /did not answer GLOBAL_FOREACH/);
   * ```
   */
  wait(seq: number, op: string, timeoutMs: number): Promise<JoolMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(seq);
        reject(new Error(`the kernel did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(seq, { op, resolve, reject, timer });
    });
  }

  /**
   * Takes the waiter of `seq` (its timeout cleared): the caller settles it.
   *
   * @param seq a reply's sequence number
   * @returns the waiter, or undefined when nobody awaits that reply
   */
  take(seq: number): Waiter | undefined {
    const waiter = this.#waiters.get(seq);
    if (waiter === undefined) return undefined;
    this.#waiters.delete(seq);
    clearTimeout(waiter.timer);
    return waiter;
  }

  /**
   * Rejects every waiter (the channel closed, or Jool's family went away).
   *
   * @param error the error for a request of that name
   */
  rejectAll(error: (op: string) => Error): void {
    for (const seq of [...this.#waiters.keys()]) {
      const waiter = this.take(seq)!;
      waiter.reject(error(waiter.op));
    }
  }
}
