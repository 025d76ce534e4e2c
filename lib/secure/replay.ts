/**
 * The replay window of one sender, as IPsec's (RFC 4303 section 3.4.3) and WireGuard's: the
 * highest sequence number accepted so far and a bitmap of the {@linkcode WINDOW} numbers below
 * it. A number already seen, or older than the window, is refused; a number above the highest
 * slides the window (however far: it was authenticated first, so it is the sender's own).
 * Reordering within the window is accepted. Pure: no sockets, no clock.
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
   */
  commit(sequence: number): void {
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
  }
}
