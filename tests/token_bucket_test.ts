import assert from "node:assert/strict";
import { KeyedTokenBuckets, TokenBucket } from "../lib/token_bucket.ts";

Deno.test("TokenBucket lets a burst through, then the rate, and never saves up more than the burst", () => {
  const bucket = new TokenBucket({ ratePerSecond: 100, burst: 20 }, 0);
  let passed = 0;
  for (let i = 0; i < 100; i++) if (bucket.take(0)) passed++;
  assert.equal(passed, 20);
  // One second at 1000 tries/s: 100 more.
  passed = 0;
  for (let t = 1; t <= 1000; t++) if (bucket.take(t)) passed++;
  assert.equal(passed, 100);
  // A long quiet spell refills to the burst only.
  passed = 0;
  for (let i = 0; i < 100; i++) if (bucket.take(1_000_000)) passed++;
  assert.equal(passed, 20);
  assert.equal(bucket.take(999_000), false, "a clock going back adds nothing");
});

Deno.test("KeyedTokenBuckets keeps one bucket per key and forgets the least recently used past its size", () => {
  const buckets = new KeyedTokenBuckets({ ratePerSecond: 1, burst: 1 }, 3);
  assert.equal(buckets.take("a", 0), true);
  assert.equal(buckets.take("a", 0), false);
  assert.equal(buckets.take("b", 0), true);
  assert.equal(buckets.take("c", 0), true);
  assert.equal(buckets.take("a", 0), false); // a is now the most recent
  assert.equal(buckets.take("d", 0), true); // forgets b
  assert.equal(buckets.size, 3);
  assert.equal(buckets.take("a", 0), false, "a was kept");
  assert.equal(buckets.take("b", 0), true, "b was forgotten: a fresh bucket");
  for (let i = 0; i < 10_000; i++) buckets.take(`spoofed${i}`, 0);
  assert.equal(buckets.size, 3);
});
