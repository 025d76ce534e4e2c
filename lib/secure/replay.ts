/**
 * The replay window of one sender, as IPsec's (RFC 4303 section 3.4.3) and WireGuard's: the
 * highest sequence number accepted so far and a bitmap of the {@linkcode WINDOW} numbers below
 * it. A number already seen, or older than the window, is refused; a number above the highest
 * slides the window (however far: it was authenticated first, so it is the sender's own).
 * Reordering within the window is accepted. It also sees loss: {@linkcode ReplayWindow.commit}
 * says how many numbers a datagram skipped over (lost, or still on their way) and whether it
 * filled such a gap (it came late: reordering, not loss). Pure: no sockets, no clock.
 *
 * @module
 */

/** How many sequence numbers below the highest one are remembered. */
export const WINDOW = 1024;

/** What the window says of a sequence number. */
export type Verdict = "new" | "duplicate" | "too old";

/** The replay window of one sender. */
export class ReplayWindow {
  /** The highest sequence number accepted; 0 = none yet (sequence numbers start at 1). */
  #top = 0;
  /** The first sequence number accepted: gaps are counted above it only (we may join late). */
  #base = 0;
  /** Bit `s % WINDOW` is set when `s` (within the window) was accepted. */
  readonly #seen = new Uint32Array(WINDOW / 32);

  /** The highest sequence number accepted so far (0: none). */
  get top(): number {
    return this.#top;
  }

  /**
   * Says whether `sequence` may be accepted, without recording it (call {@linkcode commit} once
   * the datagram verified: an unverified number must not move the window).
   *
   * @param sequence the sequence number, 1 or more
   * @returns `"new"`, `"duplicate"` or `"too old"`
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ReplayWindow } from "./replay.ts";
   *
   * const window = new ReplayWindow();
   * window.commit(5);
   * assert.equal(window.check(5), "duplicate");
   * assert.equal(window.check(4), "new");
   * ```
   */
  check(sequence: number): Verdict {
    if (sequence < 1) return "too old";
    if (sequence > this.#top) return "new";
    if (this.#top - sequence >= WINDOW) return "too old";
    const bit = sequence % WINDOW;
    return (this.#seen[bit >>> 5] & (1 << (bit & 31))) !== 0 ? "duplicate" : "new";
  }

  /**
   * Records an accepted sequence number (one {@linkcode check} said is `"new"`).
   *
   * @param sequence the sequence number
   * @returns how many sequence numbers it skipped over (a gap: lost or late datagrams), or
   *   {@linkcode LATE} when it fills a gap (it arrived after a later one), or 0 (in order, or
   *   older than the first one accepted)
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { LATE, ReplayWindow } from "./replay.ts";
   *
   * const window = new ReplayWindow();
   * assert.deepEqual([1, 4, 2, 3, 5].map((s) => window.commit(s)), [0, 2, LATE, LATE, 0]);
   * ```
   */
  commit(sequence: number): number {
    let result = 0;
    if (this.#top === 0) {
      this.#base = sequence;
    } else if (sequence > this.#top) {
      result = sequence - this.#top - 1;
    } else if (sequence > this.#base) result = LATE;
    if (sequence > this.#top) {
      const gap = sequence - this.#top;
      if (gap >= WINDOW) this.#seen.fill(0);
      else {
        // Clear the bits of the numbers skipped over: they are the window's new empty slots.
        for (let s = this.#top + 1; s < sequence; s++) {
          const bit = s % WINDOW;
          this.#seen[bit >>> 5] &= ~(1 << (bit & 31));
        }
      }
      this.#top = sequence;
    }
    const bit = sequence % WINDOW;
    this.#seen[bit >>> 5] |= 1 << (bit & 31);
    return result;
  }
}

/** What {@linkcode ReplayWindow.commit} returns for a datagram that filled a gap. */
export const LATE: number = -1;
