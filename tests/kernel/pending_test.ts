/** The kernel channel's awaited requests (lib/kernel/pending.ts): routed by sequence number. */
import assert from "node:assert/strict";
import type { JoolMessage } from "../../lib/jool/message.ts";
import { PendingReplies } from "../../lib/kernel/pending.ts";

const reply = { cmd: 8 } as unknown as JoolMessage;

Deno.test("PendingReplies hands the waiter of a sequence number over once, its timeout cleared", async () => {
  const pending = new PendingReplies();
  const waiting = pending.wait(41, "GLOBAL_FOREACH", 50);
  assert.equal(pending.size, 1);
  assert.equal(pending.take(40), undefined, "another request's number");
  const waiter = pending.take(41)!;
  assert.equal(waiter.op, "GLOBAL_FOREACH");
  assert.equal(pending.take(41), undefined, "taken once");
  assert.equal(pending.size, 0);
  waiter.resolve(reply);
  assert.equal(await waiting, reply);
  await new Promise((r) => setTimeout(r, 70)); // the cleared timeout rejects nothing later
});

Deno.test("PendingReplies rejects a request nobody answered within its timeout, and forgets it", async () => {
  const pending = new PendingReplies();
  await assert.rejects(
    pending.wait(9, "STATS_FOREACH", 10),
    /^Error: the kernel did not answer STATS_FOREACH within 10 ms$/,
  );
  assert.equal(pending.take(9), undefined);
});

Deno.test("PendingReplies.rejectAll settles every waiter with the error for its own request", async () => {
  const pending = new PendingReplies();
  const a = pending.wait(1, "GLOBAL_FOREACH", 1000);
  const b = pending.wait(2, "GLOBAL_UPDATE ss-enabled", 1000);
  pending.rejectAll((op) => new Error(`${op}: gone`));
  await assert.rejects(a, /^Error: GLOBAL_FOREACH: gone$/);
  await assert.rejects(b, /^Error: GLOBAL_UPDATE ss-enabled: gone$/);
  assert.equal(pending.size, 0);
});
