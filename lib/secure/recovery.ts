/**
 * Loss recovery's two halves, as conntrackd's FTFW mode has them: the sender's resend ring (the
 * envelopes it sealed lately, bounded in bytes) and the receiver's gap tracker (per sender, the
 * sequence numbers skipped over, when to NACK them, and when to give up and ask for a resync).
 * Reordering is not loss: a gap is NACKed only after {@linkcode REORDER_WAIT_MS}, and a datagram
 * that arrives meanwhile takes itself out of it. Pure: the caller passes the time.
 *
 * @module
 */

import { WINDOW } from "./replay.ts";

/** The resend ring's default size, bytes (`"resend buffer"`, `--net.resend-buffer`). */
export const DEFAULT_RESEND_BUFFER = 1_048_576;
/** The largest resend ring a configuration may ask for, bytes (256 MiB). */
export const MAX_RESEND_BUFFER = 268_435_456;
/** How long a receiver waits for a skipped datagram before it NACKs it: reordering, ms. */
export const REORDER_WAIT_MS = 50;
/** How long a receiver waits for the answer to its first NACK before it asks again, ms (doubles). */
export const NACK_RETRY_MS = 250;
/** How many times a receiver NACKs a range before it gives up and asks for a resync. */
export const NACK_TRIES = 4;
/** Most open gaps (ranges) tracked per sender; beyond, the oldest is given up (resync). */
export const MAX_GAPS = 64;

/** One envelope in the ring. */
export interface RingEntry {
  /** Its sequence number. */
  readonly sequence: number;
  /** The envelope's bytes, as sent (resent unchanged: same nonce, same plaintext). */
  readonly bytes: Uint8Array;
  /** When it was sealed (the envelope's time), ms. */
  readonly time: number;
}

/**
 * The sender's resend ring: the last envelopes it sealed, in sequence order, at most `maxBytes`
 * of them (the oldest go first). An envelope larger than the whole ring is not kept.
 *
 * The bytes live in one buffer allocated with the ring, written round (an envelope that does not
 * fit before the buffer's end starts again at its beginning), and each envelope's offset, length
 * and time in typed arrays: a push copies the envelope in and retains no object, so the ~10 000
 * envelopes a default ring holds cost the garbage collector nothing (an array of them, each its
 * own ArrayBuffer, cost the keyed sending path ~9 µs per batch on the host: BENCHMARKS.md).
 */
export class ResendRing {
  readonly #max: number;
  #buffer: Uint8Array | null = null;
  /** Per slot (a power-of-two circle, grown when full): the envelope's offset, length, time. */
  #offset = new Uint32Array(16);
  #length = new Uint32Array(16);
  #time = new Float64Array(16);
  /** The oldest envelope's slot, how many are held, and the oldest's sequence number. */
  #first = 0;
  #count = 0;
  #firstSequence = 0;
  /** Where the next envelope goes in the buffer. */
  #write = 0;
  #bytes = 0;

  /**
   * Makes an empty ring.
   *
   * @param maxBytes the bound, bytes (0: nothing is kept, every NACK becomes a resync)
   * @throws {RangeError} for a negative or non-integer bound
   */
  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0) {
      throw new RangeError(`resend buffer out of range: ${maxBytes}`);
    }
    this.#max = maxBytes;
  }

  /** Bytes of envelopes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Envelopes held. */
  get size(): number {
    return this.#count;
  }

  /**
   * Keeps (a copy of) an envelope just sent (sequence numbers must follow each other: a jump
   * empties the ring).
   *
   * @param entry the envelope
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ResendRing } from "./recovery.ts";
   *
   * const ring = new ResendRing(250);
   * for (let s = 1; s <= 3; s++) ring.push({ sequence: s, bytes: new Uint8Array(100), time: 0 });
   * assert.equal(ring.get(1), undefined); // pushed out: 300 bytes > 250
   * assert.equal(ring.get(3)?.sequence, 3);
   * ```
   */
  push(entry: RingEntry): void {
    this.reserve(entry.sequence, entry.bytes.length, entry.time)?.set(entry.bytes);
  }

  /**
   * Makes room for the next envelope and returns where its bytes go, to be written there before
   * anything else touches the ring (the secure channel seals straight into it: no copy).
   *
   * @param sequence its sequence number (the next one, or the ring is emptied first)
   * @param length its length, bytes
   * @param time when it was sealed, ms
   * @returns a view of the ring's buffer of `length` bytes; null when it is larger than the ring
   *   (then the ring is emptied: nothing older can be resent in order either)
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { ResendRing } from "./recovery.ts";
   *
   * const ring = new ResendRing(100);
   * ring.reserve(1, 3, 0)!.set([1, 2, 3]);
   * assert.deepEqual(ring.get(1)?.bytes, Uint8Array.of(1, 2, 3));
   * assert.equal(ring.reserve(2, 101, 0), null);
   * assert.equal(ring.size, 0);
   * ```
   */
  reserve(sequence: number, length: number, time: number): Uint8Array | null {
    if (this.#count > 0 && this.#firstSequence + this.#count !== sequence) this.#clear();
    if (length > this.#max) {
      this.#clear();
      return null;
    }
    this.#buffer ??= new Uint8Array(this.#max);
    const mask = this.#offset.length - 1;
    // Room for `length` bytes at the write position, the oldest envelopes going first.
    for (;;) {
      if (this.#count === 0) {
        this.#write = 0;
        break;
      }
      const oldest = this.#offset[this.#first];
      if (this.#write > oldest) { // held: [oldest, write); free: [write, max) and [0, oldest)
        if (this.#max - this.#write >= length) break;
        if (oldest >= length) {
          this.#write = 0;
          break;
        }
      } else if (oldest - this.#write >= length) break; // held wraps: free is [write, oldest)
      this.#bytes -= this.#length[this.#first];
      this.#first = (this.#first + 1) & mask;
      this.#count--;
      this.#firstSequence++;
    }
    if (this.#count === 0) this.#firstSequence = sequence;
    if (this.#count === this.#offset.length) this.#grow();
    const slot = (this.#first + this.#count) & (this.#offset.length - 1);
    const at = this.#write;
    this.#offset[slot] = at;
    this.#length[slot] = length;
    this.#time[slot] = time;
    this.#write += length;
    this.#count++;
    this.#bytes += length;
    return this.#buffer.subarray(at, at + length);
  }

  /** Forgets every envelope (one reserved could not be written: none may be resent out of it). */
  clear(): void {
    this.#clear();
  }

  /**
   * The envelope of a sequence number, if still held: a copy of its bytes.
   *
   * @param sequence the sequence number
   * @returns the entry, or undefined
   */
  get(sequence: number): RingEntry | undefined {
    const index = sequence - this.#firstSequence;
    if (!Number.isInteger(index) || index < 0 || index >= this.#count) return undefined;
    const slot = (this.#first + index) & (this.#offset.length - 1);
    const offset = this.#offset[slot];
    return {
      sequence,
      bytes: this.#buffer!.slice(offset, offset + this.#length[slot]),
      time: this.#time[slot],
    };
  }

  /** Twice the slots, the held ones moved to the start in order. */
  #grow(): void {
    const n = this.#offset.length;
    const offset = new Uint32Array(n * 2), length = new Uint32Array(n * 2);
    const time = new Float64Array(n * 2);
    for (let i = 0; i < this.#count; i++) {
      const slot = (this.#first + i) & (n - 1);
      offset[i] = this.#offset[slot];
      length[i] = this.#length[slot];
      time[i] = this.#time[slot];
    }
    this.#offset = offset;
    this.#length = length;
    this.#time = time;
    this.#first = 0;
  }

  #clear(): void {
    this.#first = 0;
    this.#count = 0;
    this.#write = 0;
    this.#bytes = 0;
  }
}

/** A NACK the tracker wants sent. */
export interface NackRequest {
  /** The first missing sequence number. */
  readonly first: number;
  /** How many. */
  readonly count: number;
  /** True: no resend can be accepted any more, ask for a resync (advertise). */
  readonly resync: boolean;
  /** True when this range was NACKed before (its numbers are not counted again). */
  readonly retry: boolean;
}

/** What {@linkcode GapTracker.due} says to do now. */
export interface DueWork {
  /** NACKs to send, oldest gap first. */
  readonly nacks: NackRequest[];
  /** Sequence numbers given up on (out of the window, or NACKed {@linkcode NACK_TRIES} times). */
  readonly abandoned: number;
}

interface Gap {
  first: number;
  last: number;
  dueAt: number;
  tries: number;
}

/** The open gaps of one sender, oldest first. */
export class GapTracker {
  readonly #gaps: Gap[] = [];
  #abandonedNow = 0;
  readonly #resyncs: NackRequest[] = [];

  /** Whether nothing is open: no gap, no resync to ask (the channel's timer may slow down). */
  get idle(): boolean {
    return this.#gaps.length === 0 && this.#resyncs.length === 0;
  }

  /** Sequence numbers still missing. */
  get missing(): number {
    let n = 0;
    for (const g of this.#gaps) n += g.last - g.first + 1;
    return n;
  }

  /**
   * Records that `first`..`last` were skipped over (a datagram with `last + 1` arrived first).
   *
   * @param first the first number skipped
   * @param last the last number skipped
   * @param now the time, ms
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { GapTracker, REORDER_WAIT_MS } from "./recovery.ts";
   *
   * const gaps = new GapTracker();
   * gaps.skipped(2, 3, 0);
   * assert.deepEqual(gaps.due(0, 4).nacks, []); // reordering gets its chance first
   * assert.equal(gaps.arrived(2), "late");
   * const { nacks } = gaps.due(REORDER_WAIT_MS, 4);
   * assert.deepEqual(nacks, [{ first: 3, count: 1, resync: false, retry: false }]);
   * assert.equal(gaps.arrived(3), "recovered");
   * ```
   */
  skipped(first: number, last: number, now: number): void {
    if (last < first) return;
    this.#gaps.push({ first, last, dueAt: now + REORDER_WAIT_MS, tries: 0 });
    while (this.#gaps.length > MAX_GAPS) this.#giveUp(this.#gaps.shift()!);
  }

  /**
   * Records that a skipped number arrived.
   *
   * @param sequence the sequence number (one the replay window said filled a gap)
   * @returns `"late"` (before any NACK: reordering), `"recovered"` (after a NACK), or
   *   `"untracked"` (not in an open gap: given up already)
   */
  arrived(sequence: number): "late" | "recovered" | "untracked" {
    const i = this.#gaps.findIndex((g) => g.first <= sequence && sequence <= g.last);
    if (i < 0) return "untracked";
    const gap = this.#gaps[i];
    const verdict = gap.tries > 0 ? "recovered" : "late";
    const parts: Gap[] = [];
    if (gap.first < sequence) parts.push({ ...gap, last: sequence - 1 });
    if (sequence < gap.last) parts.push({ ...gap, first: sequence + 1 });
    this.#gaps.splice(i, 1, ...parts);
    return verdict;
  }

  /**
   * What is due at `now`: NACKs of the gaps whose wait is over (each at most {@linkcode
   * NACK_TRIES} times, the wait doubling from {@linkcode NACK_RETRY_MS}), and resync requests for
   * the gaps given up (NACKed enough, or fallen out of the replay window below `top`: a resend
   * of those would be refused as too old).
   *
   * @param now the time, ms
   * @param top the sender's highest sequence number accepted
   * @returns the NACKs to send and how many numbers were given up
   */
  due(now: number, top: number): DueWork {
    const nacks: NackRequest[] = [];
    const floor = top - WINDOW + 1;
    for (let i = 0; i < this.#gaps.length; i++) {
      const gap = this.#gaps[i];
      if (gap.first < floor) {
        // The part below the window can no longer be accepted: a resync brings those sessions.
        const out: Gap = { ...gap, last: Math.min(gap.last, floor - 1) };
        this.#giveUp(out);
        if (gap.last < floor) {
          this.#gaps.splice(i--, 1);
          continue;
        }
        gap.first = floor;
      }
      if (gap.dueAt > now) continue;
      if (gap.tries >= NACK_TRIES) {
        this.#giveUp(gap);
        this.#gaps.splice(i--, 1);
        continue;
      }
      nacks.push({
        first: gap.first,
        count: gap.last - gap.first + 1,
        resync: false,
        retry: gap.tries > 0,
      });
      gap.dueAt = now + NACK_RETRY_MS * 2 ** gap.tries;
      gap.tries++;
    }
    const abandoned = this.#abandonedNow;
    this.#abandonedNow = 0;
    return { nacks: [...this.#resyncs.splice(0), ...nacks], abandoned };
  }

  #giveUp(gap: Gap): void {
    const count = gap.last - gap.first + 1;
    this.#abandonedNow += count;
    this.#resyncs.push({ first: gap.first, count, resync: true, retry: false });
  }
}
