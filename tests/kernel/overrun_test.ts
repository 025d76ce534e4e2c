/**
 * The overrun policy (lib/kernel/overrun.ts) on its own: ENOBUFS turns into an advertise at once,
 * then at most one per interval, the overruns in between covered by one advertise at its end.
 * The same policy inside the channel, over the twin: lifecycle_test.ts.
 */
import assert from "node:assert/strict";
import { createCounters } from "../../lib/counters.ts";
import { OVERRUN_ADVERTISE_INTERVAL_MS, ReceiveOverrunError } from "../../lib/kernel/error.ts";
import { OverrunAdvertiser } from "../../lib/kernel/overrun.ts";

function setup(advertise: () => void = () => {}) {
  const t = {
    now: 5_000_000,
    advertised: 0,
    counters: createCounters(),
    errors: [] as Error[],
    notices: [] as string[],
  };
  const policy = new OverrunAdvertiser({
    counters: t.counters,
    now: () => t.now,
    advertise: () => {
      t.advertised++;
      advertise();
    },
    error: (e) => t.errors.push(e),
    notice: (level, text) => t.notices.push(`${level}: ${text}`),
  });
  return { policy, t };
}

Deno.test("OverrunAdvertiser: the first overrun advertises at once, a later one after the interval too", () => {
  const { policy, t } = setup();
  policy.overrun();
  assert.equal(t.advertised, 1);
  assert.equal(t.counters.kernelOverruns, 1);
  assert.equal(t.counters.kernelOverrunAdvertisesHeld, 0);
  assert.ok(t.errors[0] instanceof ReceiveOverrunError);
  assert.match(t.errors[0].message, /asking it to advertise its table$/);
  t.now += OVERRUN_ADVERTISE_INTERVAL_MS;
  policy.overrun();
  assert.equal(t.advertised, 2, "the interval is over");
  policy.close();
});

Deno.test("OverrunAdvertiser: overruns within the interval are held, and one advertise covers them at its end", async () => {
  const { policy, t } = setup();
  policy.overrun();
  t.now += OVERRUN_ADVERTISE_INTERVAL_MS - 30;
  policy.overrun();
  policy.overrun();
  policy.overrun();
  assert.equal(t.advertised, 1, "held back");
  assert.equal(t.counters.kernelOverruns, 4);
  assert.equal(t.counters.kernelOverrunAdvertisesHeld, 3);
  assert.match(t.errors[1].message, /the next one follows in 1 s$/);
  const end = Date.now() + 2000;
  while (t.advertised < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
  assert.equal(t.advertised, 2);
  assert.deepEqual(t.notices, [
    "info: asking the kernel to advertise its table for 3 receive overrun(s) held back (at most one advertise per 30 s)",
  ]);
  // The held advertise started a new interval: the next overrun is held again.
  policy.overrun();
  assert.equal(t.advertised, 2);
  policy.close();
});

Deno.test("OverrunAdvertiser: a failing advertise is reported, not raised", () => {
  const { policy, t } = setup(() => {
    throw new Error("JOOLD_ADVERTISE: the family is gone");
  });
  policy.overrun();
  assert.equal(t.advertised, 1);
  assert.equal(t.errors.length, 2);
  assert.match(t.errors[1].message, /the family is gone/);
});

Deno.test("OverrunAdvertiser.close drops the advertise it held back", async () => {
  const { policy, t } = setup();
  policy.overrun();
  t.now += OVERRUN_ADVERTISE_INTERVAL_MS - 10;
  policy.overrun();
  policy.close();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(t.advertised, 1);
  assert.deepEqual(t.notices, []);
});
