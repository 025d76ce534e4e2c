/**
 * A small latency histogram: fixed 1-2-5 bucket bounds in microseconds, constant memory, O(1)
 * record. The kernel channel keeps one for the time from receiving a session batch to sending its
 * JOOLD_ACK (the kernel holds its next batch until the ACK, so this bounds the sync throughput).
 *
 * @module
 */

/** Inclusive upper bounds of the buckets, µs; one more, open bucket holds everything above. */
export const LATENCY_BOUNDS_US: readonly number[] = [
  1,
  2,
  5,
  10,
  20,
  50,
  100,
  200,
  500,
  1_000,
  2_000,
  5_000,
  10_000,
  20_000,
  50_000,
  100_000,
];

/** What a {@linkcode LatencyHistogram} says, all in whole microseconds. */
export interface LatencySummary {
  /** Samples recorded. */
  readonly count: number;
  /** Upper bound of the median's bucket (the max when that is smaller or the bucket is open). */
  readonly p50: number;
  /** Upper bound of the 99th percentile's bucket (same rule). */
  readonly p99: number;
  /** Largest sample. */
  readonly max: number;
  /** Mean. */
  readonly mean: number;
}

/**
 * Bucketed latency histogram (microseconds).
 *
 * @example
 * ```ts
 * const h = new LatencyHistogram();
 * h.record(30);
 * h.record(700);
 * formatLatency(h.summary()); // "2 batches, p50 <= 50 us, p99 <= 700 us, max 700 us, mean 365 us"
 * ```
 */
export class LatencyHistogram {
  readonly #counts: number[] = new Array(LATENCY_BOUNDS_US.length + 1).fill(0);
  #count = 0;
  #sum = 0;
  #max = 0;

  /**
   * Adds one sample.
   *
   * @param us the latency in microseconds (negative or NaN samples count as 0)
   */
  record(us: number): void {
    const value = us > 0 ? us : 0;
    let i = 0;
    while (i < LATENCY_BOUNDS_US.length && value > LATENCY_BOUNDS_US[i]) i++;
    this.#counts[i]++;
    this.#count++;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
  }

  /**
   * Counts per bucket: index i counts samples up to `LATENCY_BOUNDS_US[i]` (above the previous
   * bound); the last index counts the samples above every bound.
   *
   * @returns a copy of the counts
   */
  counts(): number[] {
    return [...this.#counts];
  }

  /** Sum of every sample, µs (a Prometheus histogram's `_sum`). */
  get sum(): number {
    return this.#sum;
  }

  #quantile(q: number): number {
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        const bound = LATENCY_BOUNDS_US[i];
        return bound === undefined ? this.#max : Math.min(bound, this.#max);
      }
    }
    return this.#max;
  }

  /**
   * The percentiles, max and mean, rounded to whole microseconds (all 0 when empty).
   *
   * @returns the summary
   */
  summary(): LatencySummary {
    if (this.#count === 0) return { count: 0, p50: 0, p99: 0, max: 0, mean: 0 };
    return {
      count: this.#count,
      p50: Math.round(this.#quantile(0.5)),
      p99: Math.round(this.#quantile(0.99)),
      max: Math.round(this.#max),
      mean: Math.round(this.#sum / this.#count),
    };
  }

  /** Forgets every sample. */
  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#max = 0;
  }
}

/**
 * Formats a summary for a log line.
 *
 * @param s the summary
 * @returns e.g. "100 batches, p50 <= 50 us, p99 <= 1000 us, max 1500 us, mean 60 us"
 * @example
 * ```ts
 * formatLatency({ count: 1, p50: 50, p99: 50, max: 42, mean: 42 });
 * ```
 */
export function formatLatency(s: LatencySummary): string {
  return `${s.count} batches, p50 <= ${s.p50} us, p99 <= ${s.p99} us, max ${s.max} us, mean ${s.mean} us`;
}
