/**
 * What the kernel channel does when its receive buffer overflowed (ENOBUFS: the kernel dropped
 * session batches for joold): it asks the kernel to advertise its whole table, which refills what
 * was lost, but at most once per {@linkcode OVERRUN_ADVERTISE_INTERVAL_MS}. Each advertise makes
 * the kernel queue every session, which under load can cause the next overrun, so overruns within
 * the interval are counted and covered by one advertise at its end.
 *
 * @module
 */

import type { Counters } from "../counters.ts";
import { type NoticeHandler, OVERRUN_ADVERTISE_INTERVAL_MS, ReceiveOverrunError } from "./error.ts";

/** What the overrun policy acts through. */
export interface OverrunParts {
  /** The daemon's counters (`kernelOverruns`, `kernelOverrunAdvertisesHeld`). */
  readonly counters: Counters;
  /** Clock, ms. */
  readonly now: () => number;
  /** Sends JOOLD_ADVERTISE; may throw (the error is reported, not raised). */
  readonly advertise: () => void;
  /** Where each overrun (a {@linkcode ReceiveOverrunError}) and a failed advertise go. */
  readonly error: (error: Error) => void;
  /** Where the held-back advertise is announced. */
  readonly notice: NoticeHandler;
}

/** Receive overruns, turned into rate-limited advertises. */
export class OverrunAdvertiser {
  readonly #parts: OverrunParts;
  #lastAdvertise = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #held = 0;

  /**
   * Builds the policy.
   *
   * @param parts counters, clock, the advertise and where to report
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { createCounters } from "../counters.ts";
   * import { OverrunAdvertiser } from "./overrun.ts";
   *
   * const counters = createCounters();
   * let advertised = 0;
   * const policy = new OverrunAdvertiser({
   *   counters, now: () => 0, advertise: () => advertised++, error: () => {}, notice: () => {},
   * });
   * policy.overrun();
   * assert.equal(advertised, 1);
   * assert.equal(counters.kernelOverruns, 1);
   * ```
   */
  constructor(parts: OverrunParts) {
    this.#parts = parts;
  }

  /** One ENOBUFS: advertise now, or count it and leave it to the advertise at the interval's end. */
  overrun(): void {
    const { counters, now, error, notice } = this.#parts;
    counters.kernelOverruns++;
    const wait = this.#lastAdvertise + OVERRUN_ADVERTISE_INTERVAL_MS - now();
    if (wait <= 0) {
      error(new ReceiveOverrunError());
      this.#advertise();
      return;
    }
    counters.kernelOverrunAdvertisesHeld++;
    this.#held++;
    error(new ReceiveOverrunError(wait));
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      const held = this.#held;
      this.#held = 0;
      notice(
        "info",
        `asking the kernel to advertise its table for ${held} receive overrun(s) held back (at most one advertise per ${
          OVERRUN_ADVERTISE_INTERVAL_MS / 1000
        } s)`,
      );
      this.#advertise();
    }, wait);
  }

  /** Drops a held-back advertise (the channel closes). */
  close(): void {
    clearTimeout(this.#timer);
  }

  #advertise(): void {
    this.#lastAdvertise = this.#parts.now();
    try {
      this.#parts.advertise();
    } catch (error) {
      this.#parts.error(error as Error);
    }
  }
}
