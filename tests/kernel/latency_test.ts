import assert from "node:assert/strict";
import { formatLatency, LATENCY_BOUNDS_US, LatencyHistogram } from "../../lib/kernel/latency.ts";

Deno.test("an empty latency histogram summarizes to zeros", () => {
  assert.deepEqual(new LatencyHistogram().summary(), { count: 0, p50: 0, p99: 0, max: 0, mean: 0 });
});

Deno.test("the latency histogram reports bucket-bounded percentiles, the exact max and the mean", () => {
  const h = new LatencyHistogram();
  const samples = [...Array(98).fill(30), 700, 150_000];
  for (const s of samples) h.record(s);
  const s = h.summary();
  assert.equal(s.count, 100);
  assert.equal(s.p50, 50); // 30 lies in (20, 50]
  assert.equal(s.p99, 1000); // the 99th sample, 700, lies in (500, 1000]
  assert.equal(s.max, 150_000); // above every bound: the open bucket, reported by its max
  assert.equal(s.mean, Math.round(samples.reduce((a, b) => a + b) / samples.length));
  assert.equal(
    formatLatency(s),
    `100 batches, p50 <= 50 us, p99 <= 1000 us, max 150000 us, mean ${s.mean} us`,
  );
});

Deno.test("a latency percentile is never reported above the largest sample", () => {
  const h = new LatencyHistogram();
  h.record(510);
  assert.deepEqual(h.summary(), { count: 1, p50: 510, p99: 510, max: 510, mean: 510 });
});

Deno.test("latency samples on a bucket bound count in that bucket; negatives count as zero", () => {
  const h = new LatencyHistogram();
  h.record(50);
  h.record(50.5);
  h.record(-3);
  h.record(Number.NaN);
  const counts = h.counts();
  assert.equal(counts.length, LATENCY_BOUNDS_US.length + 1);
  assert.equal(counts[LATENCY_BOUNDS_US.indexOf(1)], 2); // -3 and NaN as 0
  assert.equal(counts[LATENCY_BOUNDS_US.indexOf(50)], 1);
  assert.equal(counts[LATENCY_BOUNDS_US.indexOf(100)], 1);
  assert.equal(counts.reduce((a, b) => a + b), 4);
  h.reset();
  assert.equal(h.summary().count, 0);
  assert.deepEqual(h.counts(), new Array(LATENCY_BOUNDS_US.length + 1).fill(0));
});
