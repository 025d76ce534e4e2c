/**
 * Token buckets: a rate with a burst, one for a whole socket (the stats replies) or one per source
 * address in a bounded map (JOOLD_ADD per peer). Pure: the clock is passed in, so tests need no
 * sleeping.
 *
 * @module
 */

/** A rate limit: `ratePerSecond` tokens a second, at most `burst` saved up. */
export interface RateLimit {
  /** Tokens added per second. */
  readonly ratePerSecond: number;
  /** The bucket's size: how many may pass at once after a quiet spell. */
  readonly burst: number;
}

/**
 * One token bucket.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TokenBucket } from "./token_bucket.ts";
 *
 * const bucket = new TokenBucket({ ratePerSecond: 100, burst: 2 }, 0);
 * assert.equal(bucket.take(0), true);
 * assert.equal(bucket.take(0), true);
 * assert.equal(bucket.take(0), false); // the burst is spent
 * assert.equal(bucket.take(10), true); // 10 ms at 100/s: one more
 * ```
 */
export class TokenBucket {
  #tokens: number;
  #at: number;
  readonly #limit: RateLimit;

  /**
   * Creates a full bucket.
   *
   * @param limit rate and burst
   * @param nowMs the current time, ms
   */
  constructor(limit: RateLimit, nowMs: number) {
    this.#limit = limit;
    this.#tokens = limit.burst;
    this.#at = nowMs;
  }

  /**
   * Takes `cost` tokens if there are that many.
   *
   * @param nowMs the current time, ms (a clock that goes back is treated as standing still)
   * @param cost tokens the event costs (1; or its bytes, for a byte rate)
   * @returns true when they were taken (the event may pass)
   */
  take(nowMs: number, cost = 1): boolean {
    if (nowMs > this.#at) {
      this.#tokens = Math.min(
        this.#limit.burst,
        this.#tokens + ((nowMs - this.#at) * this.#limit.ratePerSecond) / 1000,
      );
      this.#at = nowMs;
    }
    if (this.#tokens < cost - 1e-9) return false; // sums of fractions of a token are inexact
    this.#tokens -= cost;
    return true;
  }
}

/**
 * One token bucket per key (a source address), in a map of bounded size: when it is full, the
 * least recently used key is forgotten (a flood of spoofed sources costs bounded memory; a
 * forgotten source starts again with a full bucket, so the limit fails open for it, never shut).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KeyedTokenBuckets } from "./token_bucket.ts";
 *
 * const buckets = new KeyedTokenBuckets({ ratePerSecond: 1, burst: 1 }, 2);
 * assert.equal(buckets.take("a", 0), true);
 * assert.equal(buckets.take("a", 0), false);
 * assert.equal(buckets.take("b", 0), true); // each key has its own bucket
 * ```
 */
export class KeyedTokenBuckets {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #limit: RateLimit;
  readonly #maxKeys: number;

  /**
   * Creates the map.
   *
   * @param limit every bucket's rate and burst
   * @param maxKeys most keys remembered at once
   */
  constructor(limit: RateLimit, maxKeys: number) {
    this.#limit = limit;
    this.#maxKeys = Math.max(1, maxKeys);
  }

  /** How many keys are remembered. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from `key`'s bucket.
   *
   * @param key the source
   * @param nowMs the current time, ms
   * @param cost tokens the event costs
   * @returns true when they were taken
   */
  take(key: string, nowMs: number, cost = 1): boolean {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.#maxKeys) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      bucket = new TokenBucket(this.#limit, nowMs);
    } else {
      this.#buckets.delete(key); // re-insert: the Map's order is the order of last use
    }
    this.#buckets.set(key, bucket);
    return bucket.take(nowMs, cost);
  }
}
